/**
 * One invocation as serve saw it end: the structured event the request log, the stats and the live feed read.
 * Made where an invocation completes (serve/pool.ts, the Lambda API's environment pool) and where a queued call is
 * dropped before it started; nothing else makes one.
 */

/** How the invocation arrived: a call through the gateway, a broker message, or the local Lambda API. */
export type InvocationKind = 'call' | 'message' | 'lambda';

/** An invocation that ended (or a call that never started). Plain data: JSON as it is, for `serve --json` and the feed. */
export interface InvocationEvent {
  /** When it ended, in ms since the epoch. */
  at: number;
  function: string;
  kind: InvocationKind;
  /** The invocation id (a call's request id, a message's id, a Lambda request id). */
  id: string;
  /** `Service.Method` of a call (or a Lambda invocation's, when its event names one). */
  endpoint?: string;
  /** A message's topic, and which delivery of it this was (1 the first). */
  topic?: string;
  attempt?: number;
  /** HTTP-like: 200 for a call answered without error or a message acked; else the error's code. */
  status: number;
  ok: boolean;
  /** False for a call dropped before it started (its caller went, its deadline or queue wait passed, queue full). */
  started: boolean;
  /** Whether it waited for a process to start (no warm one to take). */
  cold: boolean;
  /** A stream's messages: `in` of the request's, `out` of the reply's (absent: neither streamed). */
  streamed?: { in: number; out: number };
  /** Milliseconds from arrival at the pool to the answer (queueing and a cold start included); a stream: to its end. */
  ms: number;
  /** The error's detail, when it failed. */
  error?: string;
}

/** Who receives invocation events. Listeners run synchronously on the invocation's path: they must be cheap. */
export class Invocations {
  #listeners: ((event: InvocationEvent) => void)[] = [];

  /** Adds a listener; returns what removes it. */
  on(listener: (event: InvocationEvent) => void): () => void {
    this.#listeners = [...this.#listeners, listener];
    return () => void (this.#listeners = this.#listeners.filter((l) => l !== listener));
  }

  emit(event: InvocationEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A consumer's failure (a closed feed) never reaches the invocation.
      }
    }
  }
}
