/**
 * A client or bidi stream arriving as a chunked NDJSON request body, read as the handler asks: the socket stays
 * paused until the next message is wanted, so at most one received chunk's lines (plus Node's and the kernel's
 * socket buffers) wait here, whatever the caller sends.
 */
import type { IncomingMessage } from 'node:http';
import { Metadata, errors, type MessageStream, type MicroError, type StreamEnd } from '../../core/index.js';
import { discard } from './exchange.js';
import { LineSplitter } from './framing.js';

const EMPTY_TRAILERS = new Metadata();

export class NdjsonRequestStream implements MessageStream, AsyncIterator<Uint8Array> {
  readonly end: Promise<StreamEnd>;
  readonly #req: IncomingMessage;
  readonly #service: string;
  readonly #lines: LineSplitter;
  /** Lines of the last chunk not read yet: one chunk's worth at most (the socket is paused meanwhile). */
  #queue: Uint8Array[] = [];
  #ended = false;
  #error: MicroError | undefined;
  #over = false;
  #wake: (() => void) | undefined;
  #resolveEnd!: (end: StreamEnd) => void;

  constructor(req: IncomingMessage, maxLine: number, service: string) {
    this.#req = req;
    this.#service = service;
    this.#lines = new LineSplitter(maxLine);
    this.end = new Promise((resolve) => (this.#resolveEnd = resolve));
    req.pause();
    req.on('data', this.#onData);
    req.once('end', this.#onEnd);
    req.once('close', this.#onClose);
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      if (this.#over) return this.#finish();
      const line = this.#queue.shift();
      if (line !== undefined) {
        if (line.byteLength === 0) continue; // blank lines separate nothing
        return { done: false, value: line };
      }
      if (this.#ended || this.#error) return this.#finish();
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#req.resume();
      });
    }
  }

  /**
   * The handler stops reading: the rest is read and thrown away, within discard's bounds (then the connection is
   * cut), so the caller finishes sending and reads its reply.
   */
  async return(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#over) {
      this.#over = true;
      this.#queue = [];
      this.#detach();
      if (!this.#ended && !this.#req.complete) discard(this.#req, 0);
      this.#resolveEnd({ trailers: EMPTY_TRAILERS });
    }
    return { done: true, value: undefined };
  }

  #finish(): IteratorResult<Uint8Array> {
    if (!this.#over) {
      this.#over = true;
      this.#detach();
      this.#resolveEnd(this.#error ? { trailers: EMPTY_TRAILERS, error: this.#error } : { trailers: EMPTY_TRAILERS });
    }
    if (this.#error) throw this.#error;
    return { done: true, value: undefined };
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#req.pause();
    try {
      for (const line of this.#lines.push(chunk, this.#service)) this.#queue.push(line);
    } catch (err) {
      this.#error = err as MicroError;
    }
    this.#wakeUp();
  };

  readonly #onEnd = (): void => {
    try {
      const last = this.#lines.flush(this.#service);
      if (last) this.#queue.push(last);
    } catch (err) {
      this.#error = err as MicroError;
    }
    this.#ended = true;
    this.#wakeUp();
  };

  readonly #onClose = (): void => {
    if (!this.#ended && !this.#error)
      this.#error = errors.badRequest(
        this.#service || 'micro-fn',
        'the caller closed its request stream before its end',
      );
    this.#wakeUp();
  };

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #detach(): void {
    this.#req.off('data', this.#onData);
    this.#req.off('end', this.#onEnd);
    this.#req.off('close', this.#onClose);
  }
}
