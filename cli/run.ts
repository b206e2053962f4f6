import { UserError } from '../runtime/core/errors.js';
import { duration, envWithFlags, pluginOptions, sourceMapOption, transportOption, defineCommand } from './command.js';
import { loadFunction } from './load.js';

export const command = defineCommand({
  name: 'run',
  summary: 'run a function standalone: listen, register, serve one invocation, exit',
  usage: '<entry>',
  description: [
    'Runs the function in <entry> as its own server: it listens on --address (MICRO_SERVER_ADDRESS, default',
    '127.0.0.1:0), prints "listening on http://HOST:PORT" on stderr, registers in the configured registry,',
    'subscribes its topics (at most one message), serves exactly one request or message, deregisters and',
    'exits: 0 when the handler succeeded (or nothing came before --idle-timeout), 1 when it failed.',
    'Health probes (GET /health) do not use up the invocation.',
  ].join('\n'),
  options: {
    address: {
      type: 'string',
      short: 'a',
      value: 'HOST:PORT',
      description: 'where to listen (env MICRO_SERVER_ADDRESS)',
    },
    'idle-timeout': {
      type: 'string',
      value: 'DURATION',
      description: 'exit 0 if nothing arrives within it (default: wait)',
    },
    ...transportOption,
    ...sourceMapOption,
    ...pluginOptions,
  },
  examples: [
    'micro-fn run examples/helloworld',
    `curl -d '{"name":"Ada"}' http://127.0.0.1:PORT/helloworld/Greeter.Hello`,
  ],
  async run({ positionals, values }) {
    const [entry, extra] = positionals;
    if (!entry) throw new UserError('run needs an entry: micro-fn run <entry>');
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}"`);
    const env = envWithFlags(values);
    const idleTimeout = duration(values['idle-timeout'], 'idle-timeout');
    const bundle = await loadFunction(entry, env, values['source-maps'] === true);

    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop).once('SIGTERM', stop);
    const outcome = await bundle.runStandalone(bundle.definition, {
      env,
      idleTimeout,
      signal: controller.signal,
      onListening: (address) => process.stderr.write(`listening on ${address}\n`),
    });
    process.off('SIGINT', stop).off('SIGTERM', stop);
    if (outcome.kind === 'idle') process.stderr.write(`no invocation within ${values['idle-timeout']}; exiting\n`);
    return outcome.ok ? 0 : 1;
  },
});
