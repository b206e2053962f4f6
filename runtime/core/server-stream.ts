/**
 * Streaming endpoints on the server side (see stream.ts): the request's messages as the handler reads them, and the
 * handler's async iterable as the MessageStream a transport writes. Both are pulled: the handler's generator runs to
 * its next `yield` only when the transport reads the next message, and the request's next message is read only when
 * the handler asks for it. Nothing here buffers more than the one message in hand.
 */
import { jsonCodec, type Codec } from './codec.js';
import { MicroError, errors, isMicroError } from './errors.js';
import { Metadata } from './metadata.js';
import type { MessageStream, StreamEnd } from './stream.js';

const ignore = (): void => {};
const decoder = /* @__PURE__ */ new TextDecoder();

/**
 * A reply stream's iterator that also hands each message as its JSON text (`nextText`, instead of `next`): a transport
 * that writes text (serve's pipe) then skips encoding each message to bytes and decoding it back.
 */
export interface TextMessages extends AsyncIterator<Uint8Array> {
  nextText(): Promise<IteratorResult<string>>;
}

/** True when `iterator` can hand its messages as text (a ReplyStream). */
export function readsText(iterator: AsyncIterator<Uint8Array>): iterator is TextMessages {
  return typeof (iterator as Partial<TextMessages>).nextText === 'function';
}

/**
 * A request stream's messages, decoded, as a client or bidi handler iterates them. A message that does not decode
 * ends it with a 400 (the handler's loop throws it); the caller's stream ending with an error throws that error.
 * `close` stops reading (the handler returned without reading them all): the caller's stream is cancelled.
 */
export class RequestMessages implements AsyncIterable<unknown>, AsyncIterator<unknown> {
  readonly #source: MessageStream;
  readonly #codec: Codec;
  readonly #service: string;
  #it: AsyncIterator<Uint8Array> | undefined;
  #done = false;

  constructor(source: MessageStream, codec: Codec, service: string) {
    this.#source = source;
    this.#codec = codec;
    this.#service = service;
  }

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    return this;
  }

  async next(): Promise<IteratorResult<unknown>> {
    if (this.#done) return { done: true, value: undefined };
    const it = (this.#it ??= this.#source[Symbol.asyncIterator]());
    let r: IteratorResult<Uint8Array>;
    try {
      r = await it.next();
    } catch (err) {
      this.#done = true;
      throw err;
    }
    if (r.done) {
      this.#done = true;
      return { done: true, value: undefined };
    }
    try {
      return { done: false, value: this.#codec.decode(r.value) };
    } catch (err) {
      await this.close();
      const detail = isMicroError(err) ? err.detail : 'a message could not be decoded';
      throw errors.badRequest(this.#service, `request stream: ${detail}`, { cause: err });
    }
  }

  async return(): Promise<IteratorResult<unknown>> {
    await this.close();
    return { done: true, value: undefined };
  }

  /** Stops reading: the caller's stream is cancelled unless it has ended. */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    const it = (this.#it ??= this.#source[Symbol.asyncIterator]());
    await Promise.resolve(it.return?.()).catch(ignore);
  }
}

/** What a ReplyStream reports back to the dispatcher when it ends (once). */
export type StreamFinished = (error: MicroError | undefined) => void;

export interface ReplyStreamOptions {
  /** The handler's iterator, its first result already pulled. */
  iterator: AsyncIterator<unknown>;
  first: IteratorResult<unknown>;
  codec: Codec;
  /** The handler's trailers, read when the stream ends. */
  trailers: () => Metadata | undefined;
  /** Turns what the handler threw into the error the caller gets (logs a bug's stack). */
  toError: (err: unknown) => MicroError;
  /** Fires the handler's signal: the reader stopped reading. */
  abort: (reason: MicroError) => void;
  /** The error the reader's cancel is (499), for the signal and `end`. */
  cancelled: () => MicroError;
  /** Called once when the stream ends (cleanly, with an error, cancelled or cut), after `end` is settled. */
  finished: StreamFinished;
  /** Called once the handler's generator has finished (its `return()` settled after a cancel or a cut). */
  released: () => void;
}

/**
 * A server or bidi handler's reply as a MessageStream: each read pulls the handler's iterator once and encodes the
 * value. Single-use: iterating it twice continues the same stream. `cut` ends it from outside (deadline, stop).
 */
export class ReplyStream implements MessageStream, TextMessages {
  readonly end: Promise<StreamEnd>;
  readonly #o: ReplyStreamOptions;
  readonly #text: (value: unknown) => string;
  readonly #bytes = (value: unknown): Uint8Array => this.#o.codec.encode(value);
  #resolveEnd!: (end: StreamEnd) => void;
  #first: IteratorResult<unknown> | undefined;
  #error: MicroError | undefined;
  #over = false;
  /**
   * Reads run one after another: a transport that asks twice at once still gets the messages in order. `#pending`
   * counts the reads asked for and not done; only one asked while another runs waits for `#last` (a promise more).
   */
  #pending = 0;
  #last: Promise<unknown> | undefined;
  #interrupt: ((error: MicroError) => void) | undefined;

  constructor(options: ReplyStreamOptions) {
    this.#o = options;
    this.#first = options.first;
    const { codec } = options;
    this.#text =
      codec === jsonCodec
        ? (value) => JSON.stringify(value === undefined ? null : value)
        : (value) => decoder.decode(codec.encode(value));
    this.end = new Promise((resolve) => (this.#resolveEnd = resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    return this.#serial(this.#bytes);
  }

  /** The next message as its JSON text: what `next` would give, not yet encoded to bytes. */
  nextText(): Promise<IteratorResult<string>> {
    return this.#serial(this.#text);
  }

  #serial<T>(encode: (value: unknown) => T): Promise<IteratorResult<T>> {
    const run = () => this.#read(encode);
    const read = this.#pending++ === 0 ? run() : this.#last!.then(run, run);
    this.#last = read;
    return read;
  }

  async #read<T>(encode: (value: unknown) => T): Promise<IteratorResult<T>> {
    try {
      if (this.#over) {
        if (this.#error) throw this.#error;
        return { done: true, value: undefined };
      }
      let r: IteratorResult<unknown>;
      if (this.#first) {
        r = this.#first;
        this.#first = undefined;
      } else {
        try {
          r = await new Promise<IteratorResult<unknown>>((resolve, reject) => {
            this.#interrupt = reject;
            this.#o.iterator.next().then(resolve, (err: unknown) => reject(this.#o.toError(err)));
          });
        } catch (err) {
          this.#finish(err as MicroError, true);
          throw this.#error ?? err;
        } finally {
          this.#interrupt = undefined;
        }
      }
      if (this.#over) throw this.#error;
      if (r.done) {
        this.#finish(undefined, false);
        return { done: true, value: undefined };
      }
      try {
        return { done: false, value: encode(r.value) };
      } catch (err) {
        const error = this.#o.toError(err);
        this.#finish(error, false);
        throw error;
      }
    } finally {
      this.#pending--;
    }
  }

  /** The reader stops: the handler's signal fires and its generator's `return()` is called. */
  async return(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#over) {
      const error = this.#o.cancelled();
      this.#o.abort(error);
      this.#finish(error, false);
    }
    return { done: true, value: undefined };
  }

  /** Ends the stream from outside with `error` (its deadline passed, the function stops); a read waiting throws it. */
  cut(error: MicroError): void {
    if (this.#over) return;
    this.#finish(error, false);
    this.#interrupt?.(error);
  }

  /** `threw`: the handler's iterator threw (or finished): it needs no `return()`. */
  #finish(error: MicroError | undefined, threw: boolean): void {
    if (this.#over) return;
    this.#over = true;
    this.#error = error;
    this.#first = undefined;
    this.#resolveEnd({ trailers: this.#o.trailers() ?? new Metadata(), ...(error ? { error } : {}) });
    this.#o.finished(error);
    if (threw || !error) return this.#o.released();
    // Runs the generator's `finally` blocks; queued behind a `next()` still running (a handler that ignores its
    // signal settles within the grace the dispatcher gives it, or is left behind).
    Promise.resolve()
      .then(() => this.#o.iterator.return?.())
      .catch(ignore)
      .finally(this.#o.released);
  }
}

/** The async iterator of a handler's result, or undefined when it is no async iterable. */
export function iteratorOf(value: unknown): AsyncIterator<unknown> | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const make = (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator];
  return typeof make === 'function' ? (make.call(value) as AsyncIterator<unknown>) : undefined;
}
