/**
 * The Cloudflare Workers target's entry inside a function's bundle: a module worker whose `fetch` is one
 * mucp-over-HTTP invocation (the one fetch handler, runtime/plugins/http/fetch.ts) and whose `queue` runs the
 * function once per message. Imports only runtime/: it ships inside the user's artifact.
 */
import { Runner, asDefinition, jsonCodec, type Env, type ServiceDefinition } from '../../runtime/core/index.js';
import { createFetchHandler, type FetchHandler } from '../../runtime/plugins/http/fetch.js';
import { resolvePlugins, tracingOf } from '../../runtime/plugins/resolve.js';
import { noPlugins } from '../../runtime/core/build-constants.js';
import type { UpgradeWebSocket } from '../../runtime/plugins/http/fetch-socket.js';
import { webSocketPair, type ExecutionContext, type Message, type MessageBatch, type WorkerEnv } from './platform.js';

export interface WorkerOptions {
  /** Largest request body in bytes; a larger one is answered 413. Default 1 MiB, as the HTTP listener's. */
  maxBodySize?: number;
}

/** What `export default` of a module worker holds. */
export interface WorkerHandlers {
  fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response>;
  queue(batch: MessageBatch, env: WorkerEnv, ctx: ExecutionContext): Promise<void>;
}

/**
 * Makes the module worker for a function module's default export (`from` names the module in errors).
 *
 * - `fetch`: `POST /` with `Micro-Service`/`Micro-Endpoint` headers or `POST /<service>/<Service.Method>`, one
 *   fresh Function per request; errors as error JSON with their status and `Micro-Error`. `GET /health` is a
 *   probe. The Response is returned as soon as the reply exists; stopping the Function and closing its
 *   connections finish within the event (`waitUntil`).
 * - `queue`: one Function run per message, `ack()` after success and `retry()` after failure, so one bad
 *   message never retries the batch. The topic is the subscriber named like the queue (dots as dashes:
 *   queue `user-created` -> topic `user.created`), or the function's only subscriber.
 * - `env`: the Worker's bindings are the function's configuration (`ctx.env`, `MICRO_*`). Plugins are opened per
 *   invocation and closed before it ends: Workers forbid using one request's I/O objects in another.
 * @example
 * // what `micro-fn build <entry> --target cloudflare` bundles as the Worker's main module
 * import fn from './index.js';
 * import { createWorker } from 'micro-fn/adapters/cloudflare';
 * export default createWorker(fn, 'index.ts');
 */
export function createWorker(
  value: unknown,
  from = 'the function module',
  options: WorkerOptions = {},
): WorkerHandlers {
  const definition = asDefinition(value, from);
  // The bindings object is the same for every event of an isolate: one Runner and one fetch handler for it.
  const hosts = new WeakMap<WorkerEnv, { runner: Runner; fetch: FetchHandler }>();
  const host = (env: WorkerEnv) => {
    let found = hosts.get(env);
    if (!found) {
      const runner = runnerFor(definition, env);
      found = { runner, fetch: createFetchHandler(runner, options) };
      hosts.set(env, found);
    }
    return found;
  };
  return {
    fetch: (request, env, ctx) => host(env).fetch(request, { waitUntil: (p) => ctx.waitUntil(p), upgrade: sockets }),
    queue: (batch, env) => serveQueue(host(env).runner, batch),
  };
}

/** A stream over WebSocket: the server's end of a WebSocketPair, accepted; the client's goes back in the 101. */
const upgrade: UpgradeWebSocket = () => {
  const Pair = webSocketPair();
  if (!Pair) throw new Error('WebSocketPair is missing: this is no Workers runtime');
  const pair = new Pair();
  const [client, server] = [pair[0], pair[1]];
  server.accept();
  // Platform seam: `webSocket` is a Workers extension of ResponseInit.
  const init = { status: 101, webSocket: client } as ResponseInit;
  return { socket: server, response: new Response(null, init) };
};

/** None in a bundle built without streams (runtime/core/build-constants.ts): it has no stream endpoint. */
const sockets = globalThis.__MICRO_FN_NO_STREAMS__ ? undefined : upgrade;

function runnerFor(definition: ServiceDefinition, bindings: WorkerEnv): Runner {
  // Platform seam: bindings that are not strings (KV, queues, services) reach ctx.env as they are; micro-fn
  // reads only the MICRO_* strings.
  const env = bindings as Env;
  // Spans go out with fetch when the bundle was built for an OTLP endpoint (runtime/plugins/otel fetch-exporter.ts),
  // sent as the invocation ends, inside the event (waitUntil).
  return new Runner(definition, {
    env,
    // A bundle whose function never calls out has no client to open them (build-constants.ts), nor their code.
    plugins: globalThis.__MICRO_FN_NO_CLIENT__ ? noPlugins : () => resolvePlugins(env, { platform: 'web' }),
    tracing: tracingOf(env, 'web'),
  });
}

async function serveQueue(runner: Runner, batch: MessageBatch): Promise<void> {
  // A function with no subscriber (build-constants.ts) carries no more of this than the refusal.
  const topic = globalThis.__MICRO_FN_NO_SUBSCRIBERS__ ? undefined : topicOf(runner.topics, batch.queue);
  if (!globalThis.__MICRO_FN_NO_SUBSCRIBERS__ && topic !== undefined) {
    // One after another: each run is a fresh Function with its own connections, and a batch is small.
    for (const message of batch.messages) (await deliver(runner, topic, message)) ? message.ack() : message.retry();
    return;
  }
  // Retried, not lost: past the queue's max_retries the messages go to its dead-letter queue.
  console.error(
    globalThis.__MICRO_FN_NO_SUBSCRIBERS__
      ? `[${runner.name}] queue ${batch.queue}: the function subscribes to no topic`
      : `[${runner.name}] queue ${batch.queue} matches no subscriber (topics: ${runner.topics.join(', ') || 'none'}): name the queue after a topic, dots as dashes`,
  );
  for (const message of batch.messages) message.retry();
}

/** Runs the function once for `message`; true when its subscriber succeeded. */
async function deliver(runner: Runner, topic: string, message: Message): Promise<boolean> {
  const outcome = await runner.deliver(
    { id: message.id, topic, headers: { 'content-type': jsonCodec.contentType }, body: bodyBytes(message.body) },
    message.attempts,
  );
  if (!outcome.ok)
    console.error(
      `[${runner.name}] message ${message.id} on ${topic} failed (attempt ${message.attempts}): ${JSON.stringify(outcome.error)}`,
    );
  return outcome.ok;
}

/** The subscriber topic a queue feeds: the same name, or the same with dots as dashes, or the only topic. */
function topicOf(topics: readonly string[], queue: string): string | undefined {
  return (
    topics.find((t) => t === queue) ??
    topics.find((t) => t.replaceAll('.', '-') === queue) ??
    (topics.length === 1 ? topics[0] : undefined)
  );
}

/** Bytes as they were sent; anything else (what `env.QUEUE.send(value)` carries) as its JSON. */
function bodyBytes(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return jsonCodec.encode(body);
}
