/**
 * A streamed reply read from a fetch body (Server-Sent Events as the micro-fn client asks for them, or NDJSON from
 * a server that ignores Accept), parsed as it is read: the body is read only when the reader asks for the next
 * message, so fetch stops reading the socket meanwhile (backpressure). No `node:` import: it runs in Workers too.
 */
import { Metadata, errors, type MessageStream, type MicroError, type StreamEnd } from '../../core/index.js';
import { LineSplitter, SseParser } from './framing.js';

/** The longest message read from a streamed reply: 16 MiB. Past it the stream ends with a 413. */
export const MAX_REPLY_MESSAGE = 16 * 1024 * 1024;

const ignore = (): void => {};

export class ResponseStream implements MessageStream, AsyncIterator<Uint8Array> {
  readonly end: Promise<StreamEnd>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #sse: SseParser | undefined;
  readonly #lines = new LineSplitter(MAX_REPLY_MESSAGE);
  readonly #service: string;
  readonly #controller: AbortController;
  readonly #failure: (err: unknown) => MicroError;
  readonly #release: () => void;
  /** Lines of the last chunk read, not parsed yet: one chunk's worth at most. */
  #queue: Uint8Array[] = [];
  #result: StreamEnd | undefined;
  #eof = false;
  #resolveEnd!: (end: StreamEnd) => void;

  /**
   * `failure` names what a failed read means (a deadline passed, the caller's signal, a lost connection);
   * `release` frees the call's timer and listeners once the stream is over.
   */
  constructor(
    body: ReadableStream<Uint8Array>,
    sse: boolean,
    service: string,
    controller: AbortController,
    failure: (err: unknown) => MicroError,
    release: () => void,
  ) {
    this.#reader = body.getReader();
    this.#sse = sse ? new SseParser() : undefined;
    this.#service = service;
    this.#controller = controller;
    this.#failure = failure;
    this.#release = release;
    this.end = new Promise((resolve) => (this.#resolveEnd = resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      if (this.#result) {
        if (this.#result.error) throw this.#result.error;
        return { done: true, value: undefined };
      }
      const line = this.#queue.shift();
      if (line !== undefined) {
        if (!this.#sse) {
          if (line.byteLength > 0) return { done: false, value: line };
          continue;
        }
        const event = this.#sse.line(line, this.#service);
        if (event?.kind === 'message') return { done: false, value: event.data };
        if (event?.kind === 'end') this.#finish({ trailers: event.trailers });
        else if (event?.kind === 'error') this.#finish({ trailers: new Metadata(), error: event.error });
        continue;
      }
      if (this.#eof) {
        // SSE closes with `end` or `error`: without either, the connection was lost mid-stream.
        const error = this.#sse ? this.#failure(new Error('the stream ended without its end event')) : undefined;
        this.#finish(error ? { trailers: new Metadata(), error } : { trailers: new Metadata() });
        continue;
      }
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await this.#reader.read();
      } catch (err) {
        if (!this.#result) this.#finish({ trailers: new Metadata(), error: this.#failure(err) });
        continue;
      }
      if (this.#result) continue;
      try {
        if (r.done) {
          this.#eof = true;
          const last = this.#lines.flush(this.#service);
          if (last) this.#queue.push(last);
          if (this.#sse) this.#queue.push(new Uint8Array(0)); // completes an event its blank line never came for
        } else for (const l of this.#lines.push(r.value, this.#service)) this.#queue.push(l);
      } catch (err) {
        this.#finish({ trailers: new Metadata(), error: err as MicroError });
        this.#abort();
      }
    }
  }

  /** The reader stops: the request is aborted (the server sees the connection close and cancels the handler). */
  async return(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#result) {
      this.#finish({ trailers: new Metadata() });
      this.#abort();
    }
    return { done: true, value: undefined };
  }

  /** Ends the stream with `error` now (its deadline passed before the first read). */
  fail(error: MicroError): void {
    if (this.#result) return;
    this.#finish({ trailers: new Metadata(), error });
    this.#abort();
  }

  #abort(): void {
    this.#controller.abort();
    this.#reader.cancel().catch(ignore);
  }

  #finish(end: StreamEnd): void {
    this.#result = end;
    this.#queue = [];
    this.#resolveEnd(end);
    this.#release();
  }
}

/** A lost streamed reply: not retryable, the handler ran. */
export function streamCut(service: string, address: string, cause: unknown): MicroError {
  return errors.unavailable(service, `the stream from ${address} was cut before its end; not sent again`, {
    retryable: false,
    cause,
  });
}
