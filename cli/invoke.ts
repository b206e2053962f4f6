import { UserError } from '../runtime/core/errors.js';
import {
  argumentText,
  duration,
  envWithFlags,
  metadataFlags,
  pluginOptions,
  sourceMapOption,
  defineCommand,
} from './command.js';
import { loadFunction } from './load.js';
import { write } from './output.js';

export const command = defineCommand({
  name: 'invoke',
  summary: 'run a function once, in this fresh process, and print its reply',
  usage: '<entry> (<Service.Method> | --topic TOPIC) [json]',
  description: [
    'Runs the function in <entry> (a .ts/.js file or a folder with an index.ts) for exactly one invocation:',
    'an RPC request to <Service.Method>, or with --topic one broker message. The reply JSON goes to stdout',
    "(exit 0); an error goes to stderr as error JSON (exit 1). The function's own logs go to stderr.",
    'The json argument is the request body; "-" reads it from stdin; absent means {}.',
  ].join('\n'),
  options: {
    topic: {
      type: 'string',
      short: 't',
      value: 'TOPIC',
      description: 'deliver one broker message on TOPIC instead of a request',
    },
    metadata: {
      type: 'string',
      short: 'm',
      value: 'KEY=VALUE',
      multiple: true,
      description: 'request metadata (repeatable)',
    },
    timeout: { type: 'string', value: 'DURATION', description: 'deadline for the handler, e.g. 5s' },
    ...sourceMapOption,
    ...pluginOptions,
  },
  examples: [
    `micro-fn invoke examples/helloworld Greeter.Hello '{"name":"Ada"}'`,
    `micro-fn invoke examples/events --topic user.created '{"id":1}'`,
  ],
  async run({ positionals, values }) {
    const [entry, ...rest] = positionals;
    const topic = values.topic;
    const endpoint = topic === undefined ? rest.shift() : undefined;
    if (!entry) throw new UserError('invoke needs an entry: micro-fn invoke <entry> <Service.Method> [json]');
    if (topic === undefined && !endpoint)
      throw new UserError('invoke needs an endpoint like Greeter.Hello, or --topic TOPIC');
    if (endpoint !== undefined && !/^[\w$]+\.[\w$]+$/.test(endpoint))
      throw new UserError(`"${endpoint}" is not an endpoint: use Service.Method, like Greeter.Hello`);
    if (rest.length > 1) throw new UserError(`unexpected argument "${rest[1]}" (quote the JSON: '{"name":"Ada"}')`);
    const data = argumentText(rest[0]);

    const env = envWithFlags(values);
    const timeout = duration(values.timeout, 'timeout');
    const metadata = metadataFlags(values.metadata);

    // stdout carries the reply only: whatever the function logs goes to stderr.
    for (const method of ['log', 'info', 'debug', 'dir', 'dirxml', 'table'] as const) console[method] = console.error;
    const bundle = await loadFunction(entry, env, values['source-maps'] === true);
    const result = await bundle.invokeOnce(
      bundle.definition,
      { endpoint, topic, body: new TextEncoder().encode(data), metadata, timeout },
      env,
    );
    const text = new TextDecoder().decode(result.body);
    if (result.ok) {
      if (topic === undefined) await write(process.stdout, `${text}\n`);
      return 0;
    }
    await write(process.stderr, `${text}\n`);
    return 1;
  },
});
