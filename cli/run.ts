import { UserError } from '../runtime/core/errors.js';
import { duration, envWithFlags, pluginOptions, sourceMapOption, transportOption, defineCommand } from './command.js';
import { configOption, storeOption, syncOption } from './command.js';
import { loadFunction } from './load.js';
import { exitCode, write } from './output.js';

export const command = defineCommand({
  name: 'run',
  summary: 'run a function standalone: listen, register, serve one invocation, exit',
  usage: '<entry>',
  description: [
    'Runs the function in <entry> as its own server: it listens on --address (MICRO_SERVER_ADDRESS, default',
    '127.0.0.1:0), prints "listening on http://HOST:PORT" on stderr, registers in the configured registry',
    '(a 6 s TTL, refreshed while it waits), subscribes its topics (at most one message), serves exactly one',
    'request or message, deregisters and exits. Health probes (GET /health) and requests that never reach the',
    'handler (another service, an unknown endpoint, a body it cannot decode) do not use up the invocation.',
    '',
    "Deadlines: the caller's Micro-Timeout and --timeout (the earlier wins). At the deadline the caller gets",
    "408 error JSON and the handler's ctx.signal fires; the handler gets 1 s to wind down, then the instance",
    'deregisters and exits. SIGTERM or SIGINT ends a waiting instance at once; a serving one fires the',
    "handler's signal and exits once it answered, or after 1 s (its caller then gets a 503). A second signal",
    'exits at once.',
    '',
    'With --json, "listening on" is {"listening":"http://HOST:PORT"} on stderr, and how it ended is',
    '{"kind":"request|message|idle|stopped","ok":true|false,"endpoint"|"topic":...,"error":{...}} on stdout.',
    '',
    'A stream is its one invocation: it exits once the stream has ended, or once its caller went away mid-stream',
    "(the handler's ctx.signal fires; exit 1).",
    '',
    'Exit codes: 0 the handler succeeded (or nothing came before --idle-timeout, or it was stopped while',
    'waiting); 1 it failed; 124 it timed out (the reply was a 408).',
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
    timeout: {
      type: 'string',
      value: 'DURATION',
      description: "the longest the handler may run, e.g. 30s (default: the caller's Micro-Timeout alone)",
    },
    ...transportOption,
    ...sourceMapOption,
    ...pluginOptions,
    ...storeOption,
    ...syncOption,
    ...configOption,
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
    const json = values.json === true;
    const idleTimeout = duration(values['idle-timeout'], 'idle-timeout');
    const bundle = await loadFunction(entry, env, values['no-source-maps'] !== true);

    const timeout = duration(values.timeout, 'timeout');
    const controller = new AbortController();
    const stop = (signal: NodeJS.Signals) => {
      // The first signal ends the instance gracefully; a second one does not wait for that.
      if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
      controller.abort();
    };
    process.on('SIGINT', stop).on('SIGTERM', stop);
    const outcome = await bundle.runStandalone(bundle.definition, {
      env,
      idleTimeout,
      timeout: timeout || undefined,
      signal: controller.signal,
      onListening: (address) =>
        process.stderr.write(json ? `${JSON.stringify({ listening: address })}\n` : `listening on ${address}\n`),
    });
    process.off('SIGINT', stop).off('SIGTERM', stop);
    const code = outcome.kind === 'request' || outcome.kind === 'message' ? outcome.error?.code : undefined;
    if (json) {
      // How it ended, on stdout: kind, ok, endpoint or topic, and the error JSON its caller got, if any.
      await write(process.stdout, `${JSON.stringify(outcome)}\n`);
    } else if (outcome.kind === 'idle')
      process.stderr.write(`no invocation within ${values['idle-timeout']}; exiting\n`);
    else if (code === 408) process.stderr.write('the invocation timed out; exiting\n');
    return exitCode(outcome.ok, code);
  },
});
