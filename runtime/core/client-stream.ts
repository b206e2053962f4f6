/**
 * The caller's side of a stream (`client.stream`): the request's messages encoded as the transport pulls them, and
 * the reply's messages decoded as the caller iterates them.
 */
import type { Codec } from './codec.js';
import { MicroError, errors, toMicroError } from './errors.js';
import { Metadata } from './metadata.js';
import type { MessageStream, StreamEnd } from './stream.js';
import type { TransportResponse } from './transport.js';

const ignore = (): void => {};

/**
 * A stream call in progress: iterate it for the replies (a server or bidi stream's messages, or a client stream's
 * one reply). Breaking out of the loop (or `cancel()`) cancels the call: the handler's `ctx.signal` fires.
 * @example
 * const count = client.stream<{ n: number }>('stream', 'Countdown.Count', { from: 3 });
 * for await (const { n } of count) console.log(n);
 * console.log((await count.end).trailers.get('x-total'));
 */
export interface ClientStream<Res = unknown, Req = unknown> extends AsyncIterable<Res> {
  /** The reply's metadata (what the handler set before its first message); rejects when the call failed first. */
  readonly metadata: Promise<Metadata>;
  /** How the stream ended: the handler's trailers, and the error it ended with, if any. Never rejects. */
  readonly end: Promise<StreamEnd>;
  /**
   * Sends one request message (opened with `{ send: true }`); resolves once the transport has taken it, so a caller
   * that awaits it never runs ahead of the connection.
   */
  send(value: Req): Promise<void>;
  /** Ends the request stream (opened with `{ send: true }`): the handler's loop over its messages finishes. */
  close(): void;
  /** Stops the call: the reply is read no further and the handler's `ctx.signal` fires. */
  cancel(): Promise<void>;
}

/** A request stream fed by `send` and `close`: holds one message at most (a send waits until it is taken). */
export class Outbox implements AsyncIterator<unknown> {
  #queue: { value: unknown; taken: () => void }[] = [];
  #closed = false;
  #reader: (() => void) | undefined;

  send(value: unknown): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('send() after close(): the request stream has ended'));
    return new Promise<void>((taken) => {
      this.#queue.push({ value, taken });
      this.#wake();
    });
  }

  close(): void {
    this.#closed = true;
    this.#wake();
  }

  async next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      const item = this.#queue.shift();
      if (item) {
        item.taken();
        return { done: false, value: item.value };
      }
      if (this.#closed) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.#reader = resolve));
    }
  }

  async return(): Promise<IteratorResult<unknown>> {
    this.#closed = true;
    for (const item of this.#queue.splice(0)) item.taken();
    return { done: true, value: undefined };
  }

  #wake(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.();
  }
}

/**
 * The request's values as a MessageStream of encoded messages, pulled. `started` turns true once the transport has
 * read a message: from then on the request was (partly) sent and is never sent again.
 */
export class EncodedRequest implements MessageStream, AsyncIterator<Uint8Array> {
  readonly end: Promise<StreamEnd>;
  started = false;
  readonly #source: AsyncIterator<unknown>;
  readonly #codec: Codec;
  #resolveEnd!: (end: StreamEnd) => void;

  constructor(source: AsyncIterator<unknown>, codec: Codec) {
    this.#source = source;
    this.#codec = codec;
    this.end = new Promise((resolve) => (this.#resolveEnd = resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    this.started = true;
    let r: IteratorResult<unknown>;
    try {
      r = await this.#source.next();
    } catch (err) {
      const error = toMicroError(err, 'micro-fn');
      this.#resolveEnd({ trailers: new Metadata(), error });
      throw error;
    }
    if (r.done) {
      this.#resolveEnd({ trailers: new Metadata() });
      return { done: true, value: undefined };
    }
    return { done: false, value: this.#codec.encode(r.value) };
  }

  async return(): Promise<IteratorResult<Uint8Array>> {
    this.#resolveEnd({ trailers: new Metadata() });
    await Promise.resolve(this.#source.return?.()).catch(ignore);
    return { done: true, value: undefined };
  }
}

/** A ClientStream over the transport's response (pending until the call is answered). */
export class StreamCall<Res, Req> implements ClientStream<Res, Req> {
  readonly metadata: Promise<Metadata>;
  readonly end: Promise<StreamEnd>;
  readonly #response: Promise<TransportResponse>;
  readonly #codec: Codec;
  readonly #outbox: Outbox | undefined;
  readonly #abort: () => void;
  #iterating = false;
  #cancelled = false;

  constructor(response: Promise<TransportResponse>, codec: Codec, outbox: Outbox | undefined, abort: () => void) {
    this.#response = response;
    this.#codec = codec;
    this.#outbox = outbox;
    this.#abort = abort;
    this.metadata = response.then((r) => {
      if (r.error) throw r.error;
      return r.metadata;
    });
    this.metadata.catch(ignore);
    this.end = response.then(
      (r): StreamEnd | Promise<StreamEnd> =>
        r.error ? { trailers: new Metadata(), error: r.error } : (r.stream?.end ?? { trailers: new Metadata() }),
      (err: unknown) => ({ trailers: new Metadata(), error: toMicroError(err) }),
    );
  }

  send(value: Req): Promise<void> {
    if (!this.#outbox)
      return Promise.reject(
        errors.badRequest('micro-fn', 'send() needs a stream opened with { send: true } (or pass an async iterable)'),
      );
    return this.#outbox.send(value);
  }

  close(): void {
    this.#outbox?.close();
  }

  async cancel(): Promise<void> {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#abort();
    void this.#outbox?.return();
    const r = await this.#response.catch(() => undefined);
    await r?.stream?.[Symbol.asyncIterator]().return?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Res> {
    if (this.#iterating) throw new Error('a stream is read once: iterate it in one loop');
    this.#iterating = true;
    let finished = false;
    try {
      const r = await this.#response;
      if (r.error) throw r.error;
      if (!r.stream) {
        // A client stream: its one reply.
        finished = true;
        yield this.#codec.decode(r.body) as Res;
        return;
      }
      for await (const message of r.stream) yield this.#codec.decode(message) as Res;
      finished = true;
    } finally {
      // Left early (break, a throw in the loop): the call is cancelled.
      if (!finished) await this.cancel();
    }
  }
}

/** A retryable error once the request stream was (partly) sent: it is never sent again. */
export function notAgain(error: MicroError): MicroError {
  if (!error.retryable) return error;
  return new MicroError(error.id, error.code, `${error.detail} (the request stream had begun: not sent again)`, {
    retryable: false,
    cause: error,
  });
}
