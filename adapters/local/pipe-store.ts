/**
 * The function side of store operations on the pipe (ipc.ts, IpcStoreCall): the local store, sync and config plugins
 * of a function process under serve call serve's store through it (runtime/plugins/local/store-pipe.ts) instead of
 * over HTTP. Answers are matched by id; at most STORE_IN_FLIGHT are in flight, later calls wait here in order.
 */
import { MicroError, parseError } from '../../runtime/core/errors.js';
import type { ControlApi, StoreEndpoint } from '../../runtime/plugins/local/protocol.js';
import { STORE_IN_FLIGHT, type IpcStoreCall, type IpcStoreReply } from './ipc.js';

/** Milliseconds an operation may take, serve's write and flush included (as over HTTP). */
const TIMEOUT = 10_000;

interface Waiting {
  resolve(response: unknown): void;
  reject(err: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

export class PipeStore {
  readonly #send: (message: IpcStoreCall) => Promise<void>;
  readonly #timeout: number;
  readonly #waiting = new Map<number, Waiting>();
  /** Calls beyond STORE_IN_FLIGHT, sent as answers come. */
  readonly #queued: (() => void)[] = [];
  #next = 1;

  constructor(send: (message: IpcStoreCall) => Promise<void>, timeout = TIMEOUT) {
    this.#send = send;
    this.#timeout = timeout;
  }

  /** Runs `endpoint` on serve's store; rejects with its error, or a 504 when no answer comes in time. */
  readonly call = <E extends StoreEndpoint>(
    endpoint: E,
    request: ControlApi[E]['request'],
  ): Promise<ControlApi[E]['response']> =>
    new Promise((resolve, reject) => {
      const start = () => {
        const id = this.#next++;
        // A write may have been applied though its answer did not come: never retried, not retryable.
        const timer = setTimeout(() => {
          this.#settle(id);
          reject(
            new MicroError('micro-fn', 504, `${endpoint}: micro-fn serve did not answer within ${this.#timeout} ms`, {
              retryable: false,
            }),
          );
        }, this.#timeout);
        this.#waiting.set(id, { resolve: resolve as (r: unknown) => void, reject, timer });
        this.#send({ type: 'store', id, endpoint, request }).catch((err: unknown) => {
          if (!this.#settle(id)) return;
          reject(
            new MicroError('micro-fn', 503, `${endpoint}: the pipe to micro-fn serve is closed`, {
              retryable: false,
              cause: err,
            }),
          );
        });
      };
      if (this.#waiting.size < STORE_IN_FLIGHT) start();
      else this.#queued.push(start);
    });

  /** Handles serve's answer; one whose call is no longer waiting (it timed out) is dropped. */
  receive(reply: IpcStoreReply): void {
    const waiting = this.#waiting.get(reply.id);
    if (!waiting || !this.#settle(reply.id)) return;
    if (reply.error) waiting.reject(parseError(reply.error, 500, 'micro-fn'));
    else waiting.resolve(reply.response);
  }

  /** Forgets call `id` and starts the next queued one; false when it was not waiting. */
  #settle(id: number): boolean {
    const waiting = this.#waiting.get(id);
    if (!waiting) return false;
    clearTimeout(waiting.timer);
    this.#waiting.delete(id);
    this.#queued.shift()?.();
    return true;
  }
}
