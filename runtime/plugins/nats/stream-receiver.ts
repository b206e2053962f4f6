/** The receiving half of a NATS stream: a bounded, sequence-checked MessageStream (the wire: stream.ts). */
import type { MsgHdrs } from 'nats';
import { MicroError, errors } from '../../core/errors.js';
import { Metadata } from '../../core/metadata.js';
import type { MessageStream, StreamEnd } from '../../core/stream.js';
import { metadataOf, replyError } from './headers.js';
import {
  BATCH_HEADER,
  CREDIT_BYTES_HEADER,
  CREDIT_HEADER,
  NOT_TRAILERS,
  STREAM_BATCH_BYTES,
  StreamOp,
  unpackBatch,
} from './stream.js';
import type { StreamLink } from './stream-link.js';

/**
 * The other side's messages as a MessageStream: a buffer of at most the window, filled as its reader grants
 * credit, checked for gaps.
 */
export class StreamReceiver implements MessageStream {
  readonly end: Promise<StreamEnd>;
  readonly #link: StreamLink;
  readonly #id: string;
  readonly #window: number;
  #buffer: Uint8Array[] = [];
  #received = 0;
  #consumed = 0;
  #granted = 0;
  #grantedBytes = 0;
  #receivedBytes = 0;
  #consumedBytes = 0;
  readonly #windowBytes: number;
  #started = false;
  #iterator: AsyncIterator<Uint8Array> | undefined;
  #finished: StreamEnd | undefined;
  #settle!: (end: StreamEnd) => void;
  #wake: (() => void) | undefined;

  constructor(link: StreamLink, id: string, lazy: boolean) {
    this.#link = link;
    this.#id = id;
    this.#window = link.window;
    this.#windowBytes = link.windowBytes;
    this.end = new Promise((resolve) => (this.#settle = resolve));
    if (!lazy) this.#start();
  }

  /** Messages buffered, not yet read: never more than the window. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** A `data` message. */
  data(seq: number, body: Uint8Array): void {
    if (this.#finished) return;
    if (seq !== this.#received + 1)
      return this.#broken(
        `stream message ${seq} arrived when ${this.#received + 1} was due: a message was lost or reordered`,
      );
    if (seq > this.#granted || this.#receivedBytes >= this.#grantedBytes)
      return this.#broken(
        `stream message ${seq} arrived past the credit (${this.#granted} messages, ${this.#grantedBytes} bytes)`,
      );
    this.#receivedBytes += body.byteLength;
    this.#received = seq;
    this.#buffer.push(body);
    this.#wake?.();
  }

  /** A batch of messages `first` to `last` (stream.ts: each its length, then its bytes). */
  batch(first: number, last: number, body: Uint8Array): void {
    if (this.#finished) return;
    const count = last - first + 1;
    const messages = Number.isSafeInteger(count) && count > 0 ? unpackBatch(body, count) : undefined;
    if (!messages) return this.#broken(`stream messages ${first}-${last} arrived as a batch that does not hold them`);
    for (let i = 0; i < messages.length && !this.#finished; i++) this.data(first + i, messages[i]!);
  }

  /** The `end` message: trailers, or the error. */
  ended(seq: number, h: MsgHdrs | undefined, body: Uint8Array): void {
    if (this.#finished) return;
    if (seq !== this.#received + 1)
      return this.#broken(
        `the stream's end arrived as message ${seq} when ${this.#received + 1} was due: a message was lost`,
      );
    const error = replyError(h, body, this.#id);
    this.#finish(error ? { trailers: metadataOf(h, NOT_TRAILERS), error } : { trailers: metadataOf(h, NOT_TRAILERS) });
  }

  /** Ends the stream with `error` after the messages already buffered. */
  fail(error: MicroError): void {
    this.#finish({ trailers: new Metadata(), error });
  }

  /** The one iterator of the stream: asking again continues it (as core's streams do), `return()` cancels it. */
  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return (this.#iterator ??= {
      next: () => this.#next(),
      return: async () => {
        this.cancel();
        return { done: true, value: undefined };
      },
    });
  }

  /** The reader stops early: the other side is told, and nothing more is read. */
  cancel(): void {
    this.#buffer = [];
    if (this.#finished) return;
    this.#finish({
      trailers: new Metadata(),
      error: new MicroError(this.#id, 499, 'the reader cancelled the stream', { retryable: false }),
    });
    this.#link.stopReading();
  }

  async #next(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#started) this.#start();
    for (;;) {
      const value = this.#buffer.shift();
      if (value !== undefined) {
        this.#consumed++;
        this.#consumedBytes += value.byteLength;
        const low =
          this.#granted - this.#consumed <= this.#window / 2 ||
          this.#grantedBytes - this.#consumedBytes <= this.#windowBytes / 2;
        if (low && !this.#finished) this.#grant();
        return { done: false, value };
      }
      if (this.#finished) {
        if (this.#finished.error) throw this.#finished.error;
        return { done: true, value: undefined };
      }
      await new Promise<void>((r) => (this.#wake = r));
    }
  }

  #start(): void {
    this.#started = true;
    this.#grant();
  }

  #grant(): void {
    this.#granted = this.#consumed + this.#window;
    this.#grantedBytes = this.#consumedBytes + this.#windowBytes;
    this.#link.control(StreamOp.credit, {
      [CREDIT_HEADER]: this.#granted,
      [CREDIT_BYTES_HEADER]: this.#grantedBytes,
      [BATCH_HEADER]: STREAM_BATCH_BYTES,
    });
  }

  #broken(detail: string): void {
    this.#finish({ trailers: new Metadata(), error: errors.internal(this.#id, detail, { retryable: false }) });
    this.#link.stopReading();
  }

  #finish(end: StreamEnd): void {
    if (this.#finished) return;
    this.#finished = end;
    this.#settle(end);
    this.#wake?.();
  }
}
