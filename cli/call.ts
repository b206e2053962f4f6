import { stdinJson } from './stdin.js';
import { UserError, isMicroError, type MicroError } from '../runtime/core/errors.js';
import { STREAM_METADATA, type StreamKind } from '../runtime/core/stream.js';
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
    '',
    'Streams: a server stream prints one JSON value per line as each arrives. An endpoint the registry lists as',
    'a client or bidi stream (or any endpoint, with --stream) reads its request messages from stdin, one JSON',
    'value per line (NDJSON), sent as they are read. An error mid-stream goes to stderr as error JSON (exit 1)',
    'after the lines already printed. --timeout bounds the whole stream (default for a stream: no bound of its',
    "own; the function's timeout still holds).",
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
    'show-metadata': {
      type: 'boolean',
      description: "print the reply metadata on stderr (and a stream's trailers after it)",
    },
    stream: { type: 'boolean', description: 'send stdin as a request stream (NDJSON), whatever the registry lists' },
    ...pluginOptions,
  },
  examples: [
    `micro-fn call helloworld Greeter.Hello '{"name":"Ada"}'`,
    `micro-fn call stream Countdown.Count '{"from":3}'`,
    `seq 1 10 | micro-fn call stream Numbers.Sum`,
  ],
  async run({ positionals, values }) {
    const [service, endpoint, data, extra] = positionals;
    if (!service || !endpoint)
      throw new UserError('call needs a service and an endpoint: micro-fn call <service> <Service.Method> [json]');
    if (!/^[\w$]+\.[\w$]+$/.test(endpoint))
      throw new UserError(`"${endpoint}" is not an endpoint: use Service.Method, like Greeter.Hello`);
    nameArgument('function', service);
    nameArgument('endpoint', endpoint);
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}" (quote the JSON: '{"name":"Ada"}')`);
    const metadata = metadataFlags(values.metadata);
    const asked = duration(values.timeout, 'timeout');
    const retries = values.retries === undefined ? undefined : Number(values.retries);
    if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0 && retries <= 100))
      throw new UserError(`--retries takes a whole number from 0 to 100; got "${values.retries}"`);
    return withSession(values, async (session) => {
      const { client } = session;
      const kind = await streamKind(session, service, endpoint);
      const fromStdin = values.stream === true || kind === 'client' || kind === 'bidi';
      if (fromStdin && data !== undefined)
        throw new UserError(
          `${endpoint} takes a ${kind ?? 'request'} stream: pipe its messages to stdin, one JSON value per line, and give no json argument`,
        );
      const request = fromStdin ? undefined : jsonArgument(data, 'request');
      // A stream's timeout bounds all of it: none of the CLI's own unless asked for.
      const timeout = asked ?? (kind || fromStdin ? Infinity : 30_000);
      // Under serve --auth, a token the CLI signs, unless the user brought one.
      if (!session.env.MICRO_AUTH_TOKEN && !Object.keys(metadata).some((k) => k.toLowerCase() === 'authorization'))
        Object.assign(metadata, await gatewayAuthorization(session, service, endpoint, asked ?? 30_000));
      const input = fromStdin ? stdinMessages() : undefined;
      // One path for every endpoint: a plain reply is a stream of one.
      const call = client.stream(service, endpoint, input ?? request, { metadata, timeout, retries });
      try {
        let shown = false;
        for await (const value of call) {
          if (values['show-metadata'] && !shown) process.stderr.write(`${JSON.stringify(await call.metadata)}\n`);
          shown = true;
          await write(process.stdout, `${JSON.stringify(value)}\n`);
        }
        if (values['show-metadata']) {
          if (!shown) process.stderr.write(`${JSON.stringify(await call.metadata)}\n`);
          const { trailers } = await call.end;
          if (trailers.size > 0) process.stderr.write(`${JSON.stringify(trailers)}\n`);
        }
        return 0;
      } catch (err) {
        if (input?.failure) throw input.failure;
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

/** How the registry lists `endpoint` of `service` streaming (undefined: a plain endpoint, or not listed). */
async function streamKind(session: Session, service: string, endpoint: string): Promise<StreamKind | undefined> {
  const versions = await session.plugins.registry.getService(service).catch(() => []);
  for (const v of versions)
    for (const e of v.endpoints) {
      const kind = e.name === endpoint ? e.metadata[STREAM_METADATA] : undefined;
      if (kind === 'server' || kind === 'client' || kind === 'bidi') return kind;
    }
  return undefined;
}

/**
 * Stdin as request messages, one JSON value per line, read as the stream takes them (stdin is not read ahead).
 * A line that is no JSON ends the call: `failure` says which.
 */
function stdinMessages(): AsyncIterable<unknown> & { failure?: UserError } {
  const out: AsyncIterable<unknown> & { failure?: UserError } = {
    async *[Symbol.asyncIterator]() {
      try {
        for await (const { value } of stdinJson()) yield value;
      } catch (err) {
        if (err instanceof UserError) out.failure = err;
        throw err;
      }
    },
  };
  return out;
}

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
