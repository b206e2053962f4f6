/**
 * The few Cloudflare Workers types this adapter touches, with the platform's own names (the same shapes as
 * `@cloudflare/workers-types`, which micro-fn does not depend on).
 */
import type { ServerSocket } from '../../runtime/plugins/http/socket-wire.js';

/** The third argument of a handler: keeps the event alive for work that finishes after the response. */
export interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void;
}

/** One message of a queue batch. Settle it with `ack()` or `retry()`; one left alone follows the batch's outcome. */
export interface Message<Body = unknown> {
  readonly id: string;
  readonly timestamp: Date;
  readonly body: Body;
  /** 1 on the first delivery. */
  readonly attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

/** What a queue consumer's `queue(batch, env, ctx)` receives. */
export interface MessageBatch<Body = unknown> {
  /** The queue's name. */
  readonly queue: string;
  readonly messages: readonly Message<Body>[];
}

/**
 * A Worker's bindings: `vars` as strings, other bindings (KV, queues, services) as objects. Handlers see them
 * all as `ctx.env`; micro-fn itself reads only the `MICRO_*` strings.
 */
export type WorkerEnv = Readonly<Record<string, unknown>>;

/** The server's end of a `WebSocketPair`: it must be `accept()`ed before it sends or receives. */
export interface WorkerWebSocket extends ServerSocket {
  accept(): void;
}

/** `new WebSocketPair()`: the client's end goes back in the 101 Response, the server keeps the other. */
export type WebSocketPairConstructor = new () => { 0: WorkerWebSocket; 1: WorkerWebSocket };

/** The `WebSocketPair` global, or undefined outside workerd. */
export function webSocketPair(): WebSocketPairConstructor | undefined {
  // Platform seam: the global exists only on workerd and is not in this project's types.
  return (globalThis as { WebSocketPair?: WebSocketPairConstructor }).WebSocketPair;
}
