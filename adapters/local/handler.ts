/**
 * The local target's entry inside a function's bundle: runs a definition one-shot in this process, either
 * handed its invocation directly (`micro-fn invoke`) or on its own listener (`micro-fn run`).
 * Imports only runtime/: it ships inside the user's artifact.
 */
export { asDefinition } from '../../runtime/core/function.js';
import {
  Metadata,
  Runner,
  jsonCodec,
  listenOnce,
  newId,
  type Env,
  type FunctionOutcome,
  type Invocation,
  type MicroFunction,
  type ServerRequest,
  type ServerResponse,
  type ServiceDefinition,
} from '../../runtime/index.js';
import { tracingOf, listenTransport, resolvePlugins } from '../../runtime/plugins/resolve.js';
import { resourceAttributes, spanSinkKey } from '../../runtime/plugins/otel/settings.js';
import { RecordingTracer } from '../../runtime/core/trace-recorder.js';
import type { SpanExporter, TracerFactory } from '../../runtime/core/trace.js';
import { MicroError, errors, toMicroError } from '../../runtime/core/errors.js';
import { HEALTH_ENDPOINT } from '../../runtime/core/server.js';
import { CallerSignal } from '../../runtime/core/transport.js';
import { STREAM_METADATA, type MessageStream, type StreamEnd, type StreamKind } from '../../runtime/core/stream.js';
import {
  IPC_FD,
  STREAM_WINDOW,
  SPANS_ENV,
  encodeMessage,
  readMessages,
  type FromFunction,
  type IpcInvoke,
  type IpcPing,
  type IpcStoreReply,
  type IpcStream,
  type ToFunction,
} from './ipc.js';
import { PipeStore } from './pipe-store.js';
import { STORE_PIPE_ENV, installStorePipe } from '../../runtime/plugins/local/store-pipe.js';
import { Credit, PipeReader, writeStream } from './pipe-stream.js';

/**
 * The streams of the invocation in progress: the request's (when it streams) and the credit of the reply's; and its
 * caller, gone when serve says `cancel`.
 */
interface StreamLink {
  request?: PipeReader;
  reply: Credit;
  caller: CallerSignal;
}

const newLink = (): StreamLink => ({ reply: new Credit(), caller: new CallerSignal() });

/**
 * A Runner on this host: the plugins the environment configures, loaded only if the handler calls out. Its spans go
 * to the exporter the environment configures, or to `tracing` when given.
 */
function runnerOf(definition: ServiceDefinition, env: Env, tracing = tracingOf(env)): Runner {
  return new Runner(definition, { env, plugins: () => resolvePlugins(env), tracing });
}

/**
 * Under a serve that exports spans to where this function's OTEL_* settings say (SPANS_ENV), tracers whose spans go
 * to serve over the pipe as plain data: this process then loads nothing of OpenTelemetry. Otherwise undefined.
 */
function pipeTracing(env: Env, send: (message: FromFunction) => Promise<void>): TracerFactory | undefined {
  const key = env[SPANS_ENV];
  if (!key || key !== spanSinkKey(env)) return undefined;
  return (service) => {
    const exporter: SpanExporter = {
      export: (spans) => send({ type: 'spans', resource: resourceAttributes(env, service), spans: [...spans] }),
    };
    return new RecordingTracer({ exporter: async () => exporter });
  };
}

export interface InvokeRequest {
  /** `Service.Method` for an RPC invocation… */
  endpoint?: string;
  /** …or a topic for one broker message. */
  topic?: string;
  /** The encoded request or message (JSON bytes). */
  body: Uint8Array;
  metadata?: Record<string, string>;
  /** Milliseconds the handler gets; travels as the request's deadline. */
  timeout?: number;
  /** A client or bidi stream's messages (JSON bytes each), pulled as the handler reads them; `body` is then empty. */
  stream?: MessageStream;
  /**
   * Receives each message of a server or bidi stream as the handler yields it (the next is made once this resolves);
   * the result's body is then empty, and `ok` and `status` say how the stream ended.
   */
  onMessage?: (message: Uint8Array) => Promise<void> | void;
}

export interface InvokeResult {
  ok: boolean;
  /** 200, or the error's code. */
  status: number;
  /** The reply, or the error JSON when not ok. A message's success has an empty body. */
  body: Uint8Array;
  metadata: Record<string, string>;
  /** The reply was a stream (its messages went to `onMessage`): the body is empty, or the error it ended with. */
  stream?: true;
}

/** Runs `definition` for exactly one invocation handed over directly, and stops it. */
export async function invokeOnce(
  definition: ServiceDefinition,
  request: InvokeRequest,
  env: Env = {},
): Promise<InvokeResult> {
  // No listener and no subscriptions: the invocation is this one. The client still reaches the configured
  // registry and broker, loaded only if the handler calls out or publishes.
  const runner = runnerOf(definition, env);
  const metadata: Record<string, string> = { ...request.metadata, 'content-type': jsonCodec.contentType };
  if (request.timeout) metadata['micro-timeout'] = String(request.timeout);
  if (request.topic !== undefined) {
    const outcome = await runner.deliver({ id: newId(), topic: request.topic, headers: metadata, body: request.body });
    const body = outcome.error ? jsonCodec.encode(outcome.error) : new Uint8Array();
    return { ok: outcome.ok, status: outcome.error?.code ?? 200, body, metadata: {} };
  }
  let ended: StreamEnd | undefined;
  const response = await runner.invoke(
    {
      id: newId(),
      service: definition.name,
      endpoint: request.endpoint ?? '',
      contentType: jsonCodec.contentType,
      body: request.body,
      metadata: new Metadata(metadata),
      ...(request.stream ? { stream: request.stream } : {}),
    },
    // A stream is read here, inside the invocation: the function ends once it has.
    async (r) => {
      if (!r.stream) return;
      try {
        for await (const message of r.stream) await request.onMessage?.(message);
      } catch {
        // its error is the end's
      }
      ended = await r.stream.end;
    },
  );
  const error = ended ? ended.error : response.error;
  const replyMetadata = response.metadata.toJSON();
  if (ended && !error) return { ok: true, status: 200, body: new Uint8Array(), metadata: replyMetadata, stream: true };
  if (ended)
    return { ok: false, status: error!.code, body: jsonCodec.encode(error), metadata: replyMetadata, stream: true };
  return { ok: !response.error, status: response.status, body: response.body, metadata: replyMetadata };
}

export interface RunOptions {
  env?: Env;
  /** `host:port` to listen on; default `MICRO_SERVER_ADDRESS` or `127.0.0.1:0`. */
  address?: string;
  /** Milliseconds to wait for the invocation before ending cleanly; 0: forever. */
  idleTimeout?: number;
  /** Called with the node address once listening and registered. */
  onListening?: (address: string) => void;
  /** Aborting ends the function: at once while it waits, after its handler's grace while it serves. */
  signal?: AbortSignal;
  /** Milliseconds the invocation may run (a caller's `Micro-Timeout` can only shorten it). */
  timeout?: number;
}

/** Runs `definition` standalone: listens, registers, takes one request or message, deregisters. */
export async function runStandalone(definition: ServiceDefinition, options: RunOptions = {}): Promise<FunctionOutcome> {
  const env = options.env ?? {};
  const plugins = await resolvePlugins(env);
  return listenOnce(definition, {
    env,
    plugins,
    transport: listenTransport(env, plugins),
    address: options.address ?? env.MICRO_SERVER_ADDRESS ?? '127.0.0.1:0',
    idleTimeout: options.idleTimeout,
    onListening: options.onListening,
    signal: options.signal,
    timeout: options.timeout,
    tracing: tracingOf(env),
  });
}

/**
 * The body of a single-use process started by `micro-fn serve`: loads, says it is ready, takes exactly one
 * invocation over the pipe at fd 3 (see ipc.ts), sends the reply (waiting until it is written), and exits: 0, or 1 when
 * the handler crashed (a 5xx). A cold start gets its invocation right away, before it said it is ready.
 */
export async function serveIpc(definition: ServiceDefinition, env: Env = process.env): Promise<void> {
  const { Socket } = await import('node:net');
  const channel = new Socket({ fd: IPC_FD, readable: true, writable: true });
  const send = (message: FromFunction) =>
    new Promise<void>((resolve, reject) =>
      channel.write(encodeMessage(message), (err) => (err ? reject(err) : resolve())),
    );
  let invocation: Invocation | undefined;
  let fn: MicroFunction | undefined;
  let os: typeof import('node:os') | undefined;
  let taken = false;
  /** It has streaming endpoints: its warm-up runs a streamed reply's path too. */
  let streaming = false;
  /** A ping came before the invocation: this process waited in serve's warm pool (its span says warm). */
  let warm = false;
  let pending: ToFunction | undefined;
  const link = newLink();
  // Answered: what is left (stopping, exiting) must not compete with the caller's side for the CPU, so the
  // main thread drops to the lowest priority (raising niceness needs no privilege). Cold starts skip it.
  const answered = async () => os?.setPriority(19);
  const exit = async (code: number) => {
    await invocation?.end();
    process.exit(code);
  };
  // Read at once: the invocation of a cold start may already be waiting in the pipe.
  // Serve answers store operations on this pipe: the local store, sync and config plugins use it (pipe-store.ts).
  const store = env[STORE_PIPE_ENV] === '1' ? new PipeStore(send) : undefined;
  if (store) installStorePipe(store.call);
  readMessages<ToFunction | IpcPing | IpcStream | IpcStoreReply>(channel, (message) => {
    if (message.type === 'store-reply') return store?.receive(message);
    if (message.type === 'data' || message.type === 'end') {
      // Beyond its credit, serve broke the protocol: the request stream has failed, and so does its handler's read.
      link.request?.receive(message);
      return;
    }
    if (message.type === 'credit') return link.reply.receive(message);
    if (message.type === 'cancel') {
      // The caller went: the reply stream is cancelled (its handler's signal fires, before its first item too).
      link.reply.receive(message);
      link.caller.go();
      // Its request stream fails: a handler reading it must not take what came as the whole of it.
      link.request?.fail(new MicroError(definition.name, 499, 'the caller went away before its request stream ended'));
      return;
    }
    if (message.type === 'ping') {
      warm = true;
      // A warm process's ping: while nobody waits, a health probe takes the very path of an invocation (this
      // reader, serveOne, the router, the dispatcher, the codec, the reply's wire form), so V8 has compiled
      // that code when the real one comes. So does a timer turn: an invocation schedules a timer (the
      // function's unsubscribe), and a process's first setTimeout costs ~0.3 ms (Node compiles its timers then). So
      // does a tracer that records: its first span loads Node's clock and random source (1-10 ms).
      const warmUp = [
        serveOne(
          fn!,
          WARM_UP,
          async () => {},
          async () => {},
        ),
        import('node:os').then((m) => (os = m)),
        Promise.resolve().then(() => invocation!.tracer.warmUp?.()),
        new Promise((r) => setTimeout(r, 0)),
        // The path of a server stream (the dispatcher's, the pipe writer's) is another: a probe streams one item.
        streaming &&
          serveOne(
            fn!,
            WARM_UP_STREAM,
            async () => {},
            async () => {},
            grantedLink(),
          ),
      ];
      void Promise.all(warmUp).then(() => send({ type: 'pong' }));
      return;
    }
    if (taken) return;
    taken = true;
    if (!fn) return void (pending = message);
    invocation!.tracer.coldStart = !warm;
    // Started right here, not through a promise or a new function: a warm process was idle, and on a cold CPU
    // every hop and every function run for the first time (compiled then) costs tens of microseconds.
    void serveOne(fn, message, send, answered, link).then(exit);
  });
  // The spawner went away: nobody is waiting for us.
  channel.once('end', () => process.exit(0));
  channel.once('error', () => process.exit(0));
  const tracing = pipeTracing(env, send) ?? tracingOf(env);
  invocation = await runnerOf(definition, env, tracing).open();
  const created = (fn = invocation.fn);
  if (pending) void serveOne(fn, pending, send, answered, link).then(exit);
  const router = created.service.router;
  const endpoints = router.endpoints().filter((e) => !e.metadata.subscriber);
  const streams = Object.fromEntries(
    endpoints.filter((e) => e.metadata[STREAM_METADATA]).map((e) => [e.name, e.metadata[STREAM_METADATA]]),
  );
  streaming = !globalThis.__MICRO_FN_NO_STREAMS__ && Object.keys(streams).length > 0;
  await send({
    type: 'ready',
    name: created.name,
    version: created.service.version,
    endpoints: endpoints.map((e) => e.name),
    ...(Object.keys(streams).length > 0 ? { streams: streams as Record<string, StreamKind> } : {}),
    topics: router.topics,
    batches: true,
  });
}

/** Runs the one invocation, sends its answer, then calls `answered`; resolves with the exit code (1 after a 5xx). */
async function serveOne(
  fn: MicroFunction,
  message: ToFunction,
  send: (message: FromFunction) => Promise<void>,
  answered: () => Promise<void>,
  link: StreamLink = newLink(),
): Promise<number> {
  const answer = async (m: FromFunction) => {
    await send(m);
    await answered().catch(() => {});
  };
  try {
    if (message.type === 'invoke') {
      // The reply is sent from inside the invocation: the function stops only once it is written (a stream: ended).
      const response = await invoke(fn, message, send, answered, link);
      // A handler that returned without reading its whole request: serve stops sending it.
      link.request?.cancel();
      return response.status >= 500 ? 1 : 0;
    }
    const { id, topic, headers, body, attempt } = message;
    const outcome = await fn.deliver({ id, topic, headers, body: encoder.encode(body) }, attempt);
    await answer({ type: 'settled', ok: outcome.ok, error: outcome.error?.toJSON() });
    return outcome.error && outcome.error.code >= 500 ? 1 : 0;
  } catch (err) {
    await send({
      type: 'reply',
      status: 500,
      contentType: 'application/json',
      body: JSON.stringify(errors.internal(fn.name, 'internal server error')),
      metadata: {},
    }).catch(() => {});
    console.error(err);
    return 1;
  }
}

/** The probe a warm process runs on its ping; a health probe never uses up the one invocation. */
const WARM_UP: IpcInvoke = {
  type: 'invoke',
  id: 'warm-up',
  endpoint: HEALTH_ENDPOINT,
  contentType: 'application/json',
  body: '{}',
  metadata: { 'micro-timeout': '1000' },
};

/** The warm-up of a function with streams: a probe answered as a server stream of one item (ServerRequest.probe). */
const WARM_UP_STREAM: IpcInvoke = { ...WARM_UP, id: 'warm-up-stream' };

/** A link whose reply stream was granted its window, as serve grants it: for WARM_UP_STREAM, which has no reader. */
function grantedLink(): StreamLink {
  const link = newLink();
  link.reply.receive({ type: 'credit', n: STREAM_WINDOW });
  return link;
}

/**
 * Runs an IPC invocation: its request stream read from the pipe as it is pulled, the reply sent in its IPC form (a
 * stream: its head, then its messages within the credit serve grants), then `answered`.
 */
function invoke(
  fn: MicroFunction,
  message: IpcInvoke,
  send: (message: FromFunction) => Promise<void>,
  answered: () => Promise<void>,
  link: StreamLink,
): Promise<ServerResponse> {
  const request: ServerRequest = {
    id: message.id,
    service: fn.name,
    endpoint: message.endpoint,
    contentType: message.contentType,
    body: encoder.encode(message.body),
    metadata: new Metadata(message.metadata),
    caller: link.caller,
  };
  if (!globalThis.__MICRO_FN_NO_STREAMS__ && message === WARM_UP_STREAM) request.probe = 'stream';
  if (message.stream) request.stream = link.request = new PipeReader((m) => void send(m).catch(() => {}), fn.name);
  return fn.invoke(request, async (r) => {
    const head = {
      type: 'reply',
      status: r.status,
      contentType: r.contentType,
      body: r.stream ? '' : decoder.decode(r.body),
      metadata: r.metadata.toJSON(),
      error: r.error?.toJSON(),
    } as const;
    if (!r.stream) {
      await send(head);
      return answered().catch(() => {});
    }
    await send({ ...head, stream: true });
    // Early: serve makes the stream's reader as it reads the reply line above.
    await writeStream(r.stream, link.reply, send, (err) => toMicroError(err, fn.name), { early: true });
    await answered().catch(() => {});
  });
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
