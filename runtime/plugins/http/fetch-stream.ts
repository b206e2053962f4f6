/**
 * A client or bidi stream arriving at a fetch host (Workers, Deno) as a chunked NDJSON request body, read from
 * `request.body` as the handler asks: the next chunk is read only once the lines of the last one were taken, so at
 * most one chunk's lines wait here (plus what the host and the kernel hold), whatever the caller sends. The line
 * framing is framing.ts's LineSplitter, as the node:http listener reads it (request-stream.ts). No `node:` import.
 */
import { Metadata, errors, type MessageStream, type MicroError, type StreamEnd } from '../../core/index.js';
import { LineSplitter } from './framing.js';
import { dropRest } from './read-all.js';

const NO_TRAILERS = /* @__PURE__ */ new Metadata();
const CUT = 'the caller closed its request stream before its end';

/** `body`'s NDJSON lines as a MessageStream, each at most `maxLine` bytes (a longer one ends it with a 413). */
export class BodyRequestStream implements MessageStream, AsyncIterator<Uint8Array> {
  readonly end: Promise<StreamEnd>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #service: string;
  readonly #lines: LineSplitter;
  /** The lines of the last chunk read, from `#at` on: one chunk's worth at most. */
  #queue: Uint8Array[] = [];
  #at = 0;
  /** The body has ended: the lines queued are the last. */
  #ended = false;
  #over = false;
  #resolveEnd!: (end: StreamEnd) => void;

  constructor(body: ReadableStream<Uint8Array> | null, maxLine: number, service: string) {
    this.#reader = body?.getReader();
    this.#service = service;
    this.#lines = new LineSplitter(maxLine);
    this.end = new Promise((resolve) => (this.#resolveEnd = resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      while (this.#at < this.#queue.length) {
        const line = this.#queue[this.#at++]!;
        if (line.byteLength > 0) return { done: false, value: line }; // blank lines separate nothing
      }
      if (this.#over) return { done: true, value: undefined };
      // The lines before a line over the bound were handed out first; then the stream ends with its 413.
      if (this.#lines.error) return this.#finish(this.#lines.error);
      if (this.#ended) return this.#finish(undefined);
      this.#queue = await this.#read();
      this.#at = 0;
    }
  }

  /**
   * The handler stops reading: the rest of the body is read and thrown away, up to LINGER_BYTES (then cancelled), so
   * a caller still sending finishes and reads its reply: a host that stops reading a body closes the connection
   * under the caller (workerd does), and most clients then report a failed request instead of the reply.
   */
  async return(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#over) this.drained = this.#discard();
    this.#settle(undefined, false);
    return { done: true, value: undefined };
  }

  /** Settles once what return() reads and throws away is done with: the invocation waits for it. */
  drained: Promise<void> = Promise.resolve();

  async #discard(): Promise<void> {
    const reader = this.#reader;
    if (!reader || this.#ended) return;
    try {
      await dropRest(reader);
    } catch {
      // the caller went: nothing left to read
    }
  }

  /** The lines of the next chunk (the last line when the body ended without a line break after it). */
  async #read(): Promise<Uint8Array[]> {
    if (!this.#reader) return ((this.#ended = true), []);
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await this.#reader.read();
    } catch {
      // The host lost the caller's connection mid-body.
      if (this.#over) return [];
      return this.#finish(errors.badRequest(this.#service || 'micro-fn', CUT)); // throws it
    }
    if (this.#over) return [];
    if (!chunk.done) return this.#lines.push(chunk.value, this.#service);
    this.#ended = true;
    let last: Uint8Array | undefined;
    try {
      last = this.#lines.flush(this.#service);
    } catch (err) {
      return this.#finish(err as MicroError); // a last line over the bound: throws its 413
    }
    return last ? [last] : [];
  }

  /** Ends the stream with `error` (thrown to the reader) or cleanly. */
  #finish(error: MicroError): never;
  #finish(error: MicroError | undefined): IteratorResult<Uint8Array>;
  #finish(error: MicroError | undefined): IteratorResult<Uint8Array> {
    this.#settle(error);
    if (error) throw error;
    return { done: true, value: undefined };
  }

  #settle(error: MicroError | undefined, cancel = true): void {
    if (this.#over) return;
    this.#over = true;
    this.#queue = [];
    if (cancel) void this.#reader?.cancel().catch(() => {});
    this.#resolveEnd(error ? { trailers: NO_TRAILERS, error } : { trailers: NO_TRAILERS });
  }
}

/**
 * `reply` ending only once `request` was read to its end (what the handler left unread thrown away, within
 * LINGER_BYTES): a host that ends a response while its request body is still arriving closes the connection under
 * a caller that is still sending (workerd does), which most clients report as a failed request.
 */
export function afterRequest(reply: MessageStream, request: BodyRequestStream): MessageStream {
  const finish = async () => {
    await request.return();
    await request.drained;
  };
  return {
    end: reply.end,
    [Symbol.asyncIterator]() {
      const it = reply[Symbol.asyncIterator]();
      return {
        async next() {
          let next: IteratorResult<Uint8Array>;
          try {
            next = await it.next();
          } catch (err) {
            await finish();
            throw err;
          }
          if (next.done) await finish();
          return next;
        },
        return: async () => {
          await finish();
          return (await it.return?.()) ?? { done: true, value: undefined };
        },
      };
    },
  };
}

/**
 * `response` (a plain reply to a request stream: a client stream's answer, an error) with a body that ends only once
 * `request` was read to its end, for the reason afterRequest gives.
 */
export function afterRequestBody(response: Response, request: BodyRequestStream): Response {
  const source = response.body?.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = source ? await source.read() : { done: true as const, value: undefined };
      if (!next.done) return controller.enqueue(next.value);
      await request.return();
      await request.drained;
      controller.close();
    },
    cancel: () => request.return().then(() => undefined),
  });
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  return new Response(body, { status: response.status, headers });
}
