import { writeSync } from 'node:fs';
import { stdinJson } from './stdin.js';
import { UserError, errors } from '../runtime/core/errors.js';
import { Metadata } from '../runtime/core/metadata.js';
import type { MessageStream, StreamEnd } from '../runtime/core/stream.js';
import type { InvokeResult } from '../adapters/local/handler.js';
import { readConfig } from '../runtime/core/config.js';
import {
  argumentText,
  duration,
  envWithFlags,
  metadataFlags,
  pluginOptions,
  sourceMapOption,
  defineCommand,
} from './command.js';
import { configOption, storeOption, syncOption } from './command.js';
import { loadFunction } from './load.js';
import { exitCode, write } from './output.js';

export const command = defineCommand({
  name: 'invoke',
  summary: 'run a function once, in this fresh process, and print its reply',
  usage: '<entry> (<Service.Method> | --topic TOPIC) [json]',
  description: [
    'Runs the function in <entry> (a .ts/.js file or a folder with an index.ts) for exactly one invocation:',
    'an RPC request to <Service.Method>, or with --topic one broker message. The reply JSON goes to stdout',
    'and nothing else does: what the function writes to stdout (console.log, process.stdout) goes to stderr.',
    'An error goes to stderr as error JSON. The json argument is the request body; "-" reads it from stdin;',
    'absent means {}.',
    '',
    "At --timeout the handler's ctx.signal fires and the error is a 408; the handler gets 1 s to wind down,",
    'then invoke exits, whatever it still waits for. A handler whose promise can never settle (nothing is',
    'left for it to wait on) is a 500.',
    '',
    'Streams: a server stream prints one JSON value per line as each is yielded. A client or bidi stream (the',
    "definition's streams) reads its request messages from stdin, one JSON value per line (NDJSON), as the",
    'handler reads them; give no json argument then. An error mid-stream goes to stderr as error JSON after the',
    'lines already printed.',
    '',
    'Exit codes: 0 the handler succeeded; 1 it failed; 124 it timed out (408).',
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
    ...storeOption,
    ...syncOption,
    ...configOption,
  },
  examples: [
    `micro-fn invoke examples/helloworld Greeter.Hello '{"name":"Ada"}'`,
    `micro-fn invoke examples/events --topic user.created '{"id":1}'`,
    `seq 1 10 | micro-fn invoke examples/stream Numbers.Sum`,
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

    const env = envWithFlags(values);
    // A configuration mistake (MICRO_FN_TIMEOUT=abc) is the user's: one line, not a 500 from inside the function.
    readConfig(env);
    const timeout = duration(values.timeout, 'timeout');
    const metadata = metadataFlags(values.metadata);

    const reply = divertStdout();
    const bundle = await loadFunction(entry, env, values['no-source-maps'] !== true);
    const name = bundle.definition.name;
    const kind = endpoint === undefined ? undefined : bundle.definition.streams?.[endpoint];
    const fromStdin = kind === 'client' || kind === 'bidi';
    if (fromStdin && rest[0] !== undefined)
      throw new UserError(
        `${endpoint} takes a ${kind} stream: pipe its messages to stdin, one JSON value per line, and give no json argument`,
      );
    const data = fromStdin ? '' : argumentText(rest[0]);
    const input = fromStdin ? stdinStream() : undefined;
    const result = await unlessStranded(
      bundle.invokeOnce(
        bundle.definition,
        {
          endpoint,
          topic,
          body: new TextEncoder().encode(data),
          metadata,
          timeout,
          stream: input,
          // A server stream: each value on its line as it comes (the next is made once this one is written).
          onMessage: (message) => reply(`${new TextDecoder().decode(message)}\n`),
        },
        env,
      ),
      name,
    );
    if (reply.gone) return 0;
    if (input?.failure) throw input.failure;
    const text = new TextDecoder().decode(result.body);
    if (result.ok) {
      if (topic === undefined && !result.stream) await reply(`${text}\n`).catch(ignoreGone);
      return 0;
    }
    await write(process.stderr, `${text}\n`);
    return exitCode(false, result.status);
  },
});

/**
 * Stdin as a request stream: one JSON value per line, read as the handler asks for the next (not read ahead); blank
 * lines are skipped. A line that is no JSON ends the stream with a 400 for the handler, and `failure` says which line.
 */
function stdinStream(): MessageStream & { failure?: UserError } {
  let resolveEnd!: (end: StreamEnd) => void;
  const stream: MessageStream & { failure?: UserError } = {
    end: new Promise((resolve) => (resolveEnd = resolve)),
    async *[Symbol.asyncIterator]() {
      try {
        for await (const { line } of stdinJson()) yield new TextEncoder().encode(line);
        resolveEnd({ trailers: new Metadata() });
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        stream.failure = err;
        const error = errors.badRequest('micro-fn', err.message);
        resolveEnd({ trailers: new Metadata(), error });
        throw error;
      } finally {
        resolveEnd({ trailers: new Metadata() });
      }
    },
  };
  return stream;
}

/**
 * Sends what the function writes to stdout (console.log, process.stdout.write) to stderr, so stdout carries the
 * reply only; returns the writer of the reply. Output written to file descriptor 1 directly is not caught.
 * process.stdout is made only if the function touches it (Node loads its stream classes then, a few milliseconds of
 * a start); until then the reply is written to descriptor 1 directly, and the stream takes over what that could not
 * write (a full non-blocking pipe).
 */
function divertStdout(): ((text: string) => Promise<void>) & { gone: boolean } {
  for (const method of ['log', 'info', 'debug', 'dir', 'dirxml', 'table'] as const) console[method] = console.error;
  const own = Object.getOwnPropertyDescriptor(process, 'stdout');
  let original: NodeJS.WriteStream['write'] | undefined;
  // The reader of stdout went away (`micro-fn invoke ... | head -1`): what is left goes nowhere. A write then
  // rejects with READER_GONE, which ends a server stream (its handler is cancelled); invoke exits quietly.
  const state = { gone: false };
  const stdout = (): NodeJS.WriteStream => {
    const stream = (own?.get ? own.get.call(process) : own?.value) as NodeJS.WriteStream;
    if (!original) {
      original = stream.write.bind(stream);
      stream.write = process.stderr.write.bind(process.stderr) as typeof stream.write;
      stream.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE') throw err;
        state.gone = true;
      });
    }
    return stream;
  };
  // Node's own stdout is a configurable getter that makes the stream on first use.
  if (own?.get && own.configurable)
    Object.defineProperty(process, 'stdout', { configurable: true, enumerable: own.enumerable, get: stdout });
  else stdout();
  const writer = (text: string): Promise<void> => {
    if (state.gone) return Promise.reject(READER_GONE);
    let rest = new TextEncoder().encode(text);
    if (!original) {
      try {
        while (rest.length > 0) rest = rest.subarray(writeSync(1, rest));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EPIPE') {
          state.gone = true;
          return Promise.reject(READER_GONE);
        }
        // EAGAIN (another process made the pipe non-blocking) or the like: the stream writes the rest, or fails
      }
      if (rest.length === 0) return Promise.resolve();
      stdout();
    }
    return new Promise<void>((resolve, reject) =>
      original!(rest, (err) => {
        if ((err as NodeJS.ErrnoException | null | undefined)?.code !== 'EPIPE') return resolve();
        state.gone = true;
        reject(READER_GONE);
      }),
    );
  };
  return Object.defineProperty(writer, 'gone', { get: () => state.gone }) as typeof writer & { gone: boolean };
}

/** What a write to stdout rejects with once its reader has gone. */
const READER_GONE = new Error('the reader of stdout went away');

function ignoreGone(err: unknown): void {
  if (err !== READER_GONE) throw err;
}

/**
 * `invocation`, or a 500 when it can never settle: Node is about to exit because nothing is left to wait on (no
 * timer, no socket), so the handler's promise is one nothing will ever resolve. Without this, invoke would exit 0
 * with nothing printed.
 */
function unlessStranded(invocation: Promise<InvokeResult>, name: string): Promise<InvokeResult> {
  let onExit: (() => void) | undefined;
  const stranded = new Promise<InvokeResult>((resolve) => {
    onExit = () => {
      const error = errors.internal(
        name,
        "the handler's promise never settled, and nothing was left for it to wait on (a promise nobody resolves?)",
      );
      resolve({ ok: false, status: 500, body: new TextEncoder().encode(JSON.stringify(error)), metadata: {} });
    };
    process.once('beforeExit', onExit);
  });
  return Promise.race([invocation, stranded]).finally(() => process.off('beforeExit', onExit!));
}
