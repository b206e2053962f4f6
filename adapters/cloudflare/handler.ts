/**
 * The Cloudflare Workers target's entry inside a function's bundle: a module worker whose `fetch` is one
 * mucp-over-HTTP invocation and whose `queue` runs the function once per message. Imports only runtime/ (and
 * this folder's runtime files): it ships inside the user's artifact.
 */
import { Client, asDefinition, createFunction, errors, jsonCodec, type Env, type MicroFunction, type ServiceDefinition } from '../../runtime/core/index.js';
import { DEFAULT_MAX_BODY_SIZE } from '../../runtime/plugins/http/route.js';
import { errorResponse, readRequest, toResponse } from './fetch.js';
import type { ExecutionContext, Message, MessageBatch, WorkerEnv } from './platform.js';
import { workerPlugins, type WorkerPlugins } from './plugins.js';

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
 *   fresh Function per request; errors as error JSON with their status and `Micro-Error` (405, 404, 400, 413 as
 *   the HTTP listener answers them). `GET /health` is a probe. The Response is returned as soon as the reply
 *   exists; stopping the Function and closing its connections finish within the event (`waitUntil`).
 * - `queue`: one Function run per message, `ack()` after success and `retry()` after failure, so one bad
 *   message never retries the batch. The topic is the subscriber named like the queue (dots as dashes:
 *   queue `user-created` -> topic `user.created`), or the function's only subscriber.
 * - `env`: the Worker's bindings are the function's configuration (`ctx.env`, `MICRO_*`).
 * @example
 * // what `micro-fn build <entry> --target cloudflare` bundles as the Worker's main module
 * import fn from './index.js';
 * import { createWorker } from 'micro-fn/adapters/cloudflare';
 * export default createWorker(fn, 'index.ts');
 */
export function createWorker(value: unknown, from = 'the function module', options: WorkerOptions = {}): WorkerHandlers {
  const definition = asDefinition(value, from);
  const max = options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE;
  return {
    fetch: (request, env, ctx) => serveFetch(definition, max, request, env, ctx),
    queue: (batch, env) => serveQueue(definition, batch, env),
  };
}

/** One Function with plugins of its own, loaded only if its handler calls out or publishes. */
interface Invocation {
  fn: MicroFunction;
  /** Stops the function and closes its plugins. Never rejects. */
  end(): Promise<void>;
}

function open(definition: ServiceDefinition, env: WorkerEnv): Invocation {
  // Platform seam: bindings that are not strings (KV, queues, services) reach ctx.env as they are; micro-fn
  // reads only the MICRO_* strings.
  const config = env as Env;
  let plugins: Promise<WorkerPlugins> | undefined;
  const load = () => (plugins ??= workerPlugins(config));
  const fn = createFunction(definition, { client: new Client({ load }), env: config });
  return {
    fn,
    async end() {
      await fn.stop();
      await (await plugins?.catch(() => undefined))?.close();
    },
  };
}

async function serveFetch(definition: ServiceDefinition, max: number, request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
  const read = await readRequest(request, max);
  if (read.error) return errorResponse(read.error, read.request.id);
  let answer!: (response: Response) => void;
  const answered = new Promise<Response>((resolve) => (answer = resolve));
  const run = (async () => {
    let invocation: Invocation | undefined;
    try {
      invocation = open(definition, env);
      await invocation.fn.start();
      await invocation.fn.invoke(read.request, async (reply) => answer(toResponse(reply, read.request)));
    } catch (err) {
      // The configuration or a beforeStart hook failed: the caller gets a 500, the log gets the reason.
      console.error(`[${definition.name}] the invocation failed`, err);
      answer(errorResponse(errors.internal(definition.name, 'internal server error'), read.request.id));
    } finally {
      await invocation?.end();
    }
  })();
  ctx.waitUntil(run);
  return answered;
}

async function serveQueue(definition: ServiceDefinition, batch: MessageBatch, env: WorkerEnv): Promise<void> {
  const topic = topicOf(definition, batch.queue);
  if (topic === undefined) {
    // Retried, not lost: past the queue's max_retries the messages go to its dead-letter queue.
    const topics = Object.keys(definition.subscribers ?? {});
    console.error(`[${definition.name}] queue ${batch.queue} matches no subscriber (topics: ${topics.join(', ') || 'none'}): name the queue after a topic, dots as dashes`);
    for (const message of batch.messages) message.retry();
    return;
  }
  // One after another: each run is a fresh Function with its own connections, and a batch is small.
  for (const message of batch.messages) (await deliver(definition, env, topic, message)) ? message.ack() : message.retry();
}

/** Runs the function once for `message`; true when its subscriber succeeded. */
async function deliver(definition: ServiceDefinition, env: WorkerEnv, topic: string, message: Message): Promise<boolean> {
  let invocation: Invocation | undefined;
  try {
    invocation = open(definition, env);
    await invocation.fn.start();
    const outcome = await invocation.fn.deliver({ id: message.id, topic, headers: { 'content-type': jsonCodec.contentType }, body: bodyBytes(message.body) }, message.attempts);
    return outcome.ok;
  } catch (err) {
    console.error(`[${definition.name}] message ${message.id} failed`, err);
    return false;
  } finally {
    await invocation?.end();
  }
}

/** The subscriber topic a queue feeds: the same name, or the same with dots as dashes, or the only topic. */
function topicOf(definition: ServiceDefinition, queue: string): string | undefined {
  const topics = Object.keys(definition.subscribers ?? {});
  return topics.find((t) => t === queue) ?? topics.find((t) => t.replaceAll('.', '-') === queue) ?? (topics.length === 1 ? topics[0] : undefined);
}

/** Bytes as they were sent; anything else (what `env.QUEUE.send(value)` carries) as its JSON. */
function bodyBytes(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  return jsonCodec.encode(body);
}
