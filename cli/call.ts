import { UserError, isMicroError, type MicroError } from '../runtime/core/errors.js';
import { duration, jsonArgument, metadataFlags, pluginOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { gatewayAuthorization, noServeHint, withSession, type Session } from './plugins.js';
import { closest } from './suggest.js';
import { nameArgument } from '../runtime/plugins/local/limits.js';

export const command = defineCommand({
  name: 'call',
  summary: 'call a service endpoint through the registry and print the reply',
  usage: '<service> <Service.Method> [json]',
  description: [
    'Looks <service> up in the registry and calls <Service.Method> with the json request ("-" reads stdin;',
    'absent means {}). The reply goes to stdout (exit 0); an error goes to stderr as error JSON (exit 1).',
  ].join('\n'),
  options: {
    metadata: {
      type: 'string',
      short: 'm',
      value: 'KEY=VALUE',
      multiple: true,
      description: 'request metadata (repeatable)',
    },
    timeout: { type: 'string', value: 'DURATION', description: 'how long to wait, retries included (default 30s)' },
    retries: {
      type: 'string',
      value: 'N',
      description:
        'further attempts when a call provably never reached a handler (default 1); never after a 408 or 500',
    },
    'show-metadata': { type: 'boolean', description: 'print the reply metadata on stderr' },
    ...pluginOptions,
  },
  examples: [`micro-fn call helloworld Greeter.Hello '{"name":"Ada"}'`],
  async run({ positionals, values }) {
    const [service, endpoint, data, extra] = positionals;
    if (!service || !endpoint)
      throw new UserError('call needs a service and an endpoint: micro-fn call <service> <Service.Method> [json]');
    if (!/^[\w$]+\.[\w$]+$/.test(endpoint))
      throw new UserError(`"${endpoint}" is not an endpoint: use Service.Method, like Greeter.Hello`);
    nameArgument('function', service);
    nameArgument('endpoint', endpoint);
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}" (quote the JSON: '{"name":"Ada"}')`);
    const request = jsonArgument(data, 'request');
    const metadata = metadataFlags(values.metadata);
    const timeout = duration(values.timeout, 'timeout') ?? 30_000;
    const retries = values.retries === undefined ? undefined : Number(values.retries);
    if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0 && retries <= 100))
      throw new UserError(`--retries takes a whole number from 0 to 100; got "${values.retries}"`);
    return withSession(values, async (session) => {
      const { client } = session;
      // Under serve --auth, a token the CLI signs, unless the user brought one.
      if (!session.env.MICRO_AUTH_TOKEN && !Object.keys(metadata).some((k) => k.toLowerCase() === 'authorization'))
        Object.assign(metadata, await gatewayAuthorization(session, service, endpoint, timeout));
      try {
        const reply = await client.request(service, endpoint, request, { metadata, timeout, retries });
        if (values['show-metadata']) process.stderr.write(`${JSON.stringify(reply.metadata)}\n`);
        await write(process.stdout, `${JSON.stringify(reply.body)}\n`);
        return 0;
      } catch (err) {
        if (!isMicroError(err)) throw err;
        const hint =
          (await noServeHint(session, err, service)) ?? (await endpointHint(session, service, endpoint, err));
        const shown = hint === undefined ? err : { ...err.toJSON(), detail: `${err.detail}: ${hint}` };
        await write(process.stderr, `${JSON.stringify(shown)}\n`);
        return 1;
      }
    });
  },
});

/**
 * A 404 for an endpoint the service does not have: its endpoints from the registry, the closest first. A service the
 * registry does not have: the closest service it has. Nothing when the registry lists the endpoint (the 404 was
 * the handler's own) or lists no endpoints for the service.
 */
async function endpointHint(
  session: Session,
  service: string,
  endpoint: string,
  err: MicroError,
): Promise<string | undefined> {
  if (err.code !== 404) return undefined;
  const registry = session.plugins.registry;
  const versions = await registry.getService(service).catch(() => []);
  if (versions.length === 0) {
    const names = (await registry.listServices().catch(() => [])).map((s) => s.name);
    const match = closest(service, names);
    return match === undefined
      ? `micro-fn services lists what is registered`
      : `did you mean ${match}? (micro-fn services lists what is registered)`;
  }
  const endpoints = [...new Set(versions.flatMap((v) => v.endpoints.map((e) => e.name)))].sort();
  if (endpoints.length === 0 || endpoints.includes(endpoint)) return undefined;
  const match = closest(endpoint, endpoints);
  return `${match ? `did you mean ${match}? ` : ''}${service}'s endpoints: ${endpoints.join(', ')}`;
}
