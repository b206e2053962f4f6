/**
 * Request/reply on one NATS connection for the transport's plain calls: one subscription on `<inbox>.*` for every
 * reply, a request's own reply subject `<inbox>.<n>`, and one timer for all their timeouts. What `nc.request` does,
 * without its per-request costs: nats.js builds a `NatsError` (a stack trace) for every request it settles, even a
 * successful one, and arms a timer of its own for each.
 */
import type { Msg, MsgHdrs, NatsConnection, Subscription } from 'nats';
import { Deadlines, type Deadline } from '../../core/deadlines.js';

/** Why a request failed, as the `nats` package's errors say it: `code` is 'TIMEOUT' or '503' (no responders). */
export class RequestFailure extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

interface Pending {
  resolve: (msg: Msg) => void;
  reject: (err: unknown) => void;
  deadline: Deadline | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class Replies {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  readonly #deadlines = new Deadlines();
  #next = 0;

  /** `inbox` is a fresh inbox subject: the prefix of every reply subject. */
  constructor(nc: NatsConnection, inbox: string) {
    this.#nc = nc;
    this.#prefix = `${inbox}.`;
    this.#sub = nc.subscribe(`${inbox}.*`, { callback: (err, msg) => err || this.#reply(msg) });
    // A closing connection settles what still waits: nothing more can arrive.
    void nc.closed().then(() => {
      for (const token of [...this.#pending.keys()])
        this.#settle(token)?.reject(new Error('the NATS connection closed before the reply arrived'));
    });
  }

  /**
   * Publishes `body` to `subject` with a reply subject of its own; resolves with the reply, or rejects with a
   * RequestFailure ('TIMEOUT' after `timeout` ms or when `signal` aborts, '503' when the server says nobody
   * subscribes `subject`), or with what publish throws (max_payload, a closed connection).
   */
  request(subject: string, body: Uint8Array, headers: MsgHdrs | undefined, timeout: number, signal?: AbortSignal) {
    const token = (this.#next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      const pending: Pending = { resolve, reject, deadline: undefined, signal, onAbort: undefined };
      this.#pending.set(token, pending);
      const fail = () => this.#settle(token)?.reject(new RequestFailure('TIMEOUT', 'the request timed out'));
      pending.deadline = this.#deadlines.add(Date.now() + timeout, fail);
      if (signal) {
        pending.onAbort = fail;
        signal.addEventListener('abort', fail, { once: true });
      }
      try {
        this.#nc.publish(subject, body, { reply: this.#prefix + token, headers });
      } catch (err) {
        this.#settle(token)?.reject(err);
      }
    });
  }

  /** Stops listening for replies; requests still waiting fail with `why`. */
  close(why: string): void {
    try {
      this.#sub.unsubscribe();
    } catch {
      // the connection is closed: so is the subscription
    }
    for (const token of [...this.#pending.keys()]) this.#settle(token)?.reject(new Error(why));
  }

  #reply(msg: Msg): void {
    const pending = this.#settle(msg.subject.slice(this.#prefix.length));
    if (!pending) return; // late: its request has already ended
    const h = msg.headers;
    if (h?.hasError && h.code === 503 && msg.data.length === 0)
      pending.reject(new RequestFailure('503', 'no responders'));
    else pending.resolve(msg);
  }

  /** Takes a request out of the waiting ones (undefined when it has already ended). */
  #settle(token: string): Pending | undefined {
    const pending = this.#pending.get(token);
    if (!pending) return undefined;
    this.#pending.delete(token);
    this.#deadlines.delete(pending.deadline);
    if (pending.onAbort) pending.signal!.removeEventListener('abort', pending.onAbort);
    return pending;
  }
}
