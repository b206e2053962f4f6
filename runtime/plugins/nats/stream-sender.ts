/** The sending half of a NATS stream: pulls a MessageStream within the credit (the wire: stream.ts). */
import type { MsgHdrs } from 'nats';
import { type MicroError, errors, toMicroError } from '../../core/errors.js';
import { Metadata } from '../../core/metadata.js';
import type { MessageStream, StreamEnd } from '../../core/stream.js';
import { readsText, type TextMessages } from '../../core/server-stream.js';
import { SlabEncoder } from '../../core/slab-encoder.js';
import { metadataHeaders } from './headers.js';
import { FRAMING, SEQ_HEADER, StreamOp } from './stream.js';
import type { StreamLink } from './stream-link.js';

const EMPTY = new Uint8Array(0);
const encoder = new TextEncoder();
const ignore = (): void => {};
/** Runs `f` in the next turn of the event loop, after I/O (setImmediate where there is one). */
const nextTurn: (f: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function'
    ? (f) => (globalThis as unknown as { setImmediate: (f: () => void) => void }).setImmediate(f)
    : (f) => setTimeout(f, 0);

/** Pulls a MessageStream and sends it as `data` messages within the credit, then its `end`. */
export class StreamSender {
  readonly #link: StreamLink;
  readonly #source: MessageStream;
  readonly #id: string;
  #iterator: AsyncIterator<Uint8Array> | undefined;
  #credit = 0;
  #creditBytes = 0;
  /** Bytes of a batch the reader takes (its `micro-batch`); 0: one message at a time. */
  #batchBytes = 0;
  /** Bytes of the messages pulled so far. */
  #bytes = 0;
  /** Messages pulled from the source; `#published` of them are out, the rest in `#batch`. */
  #sent = 0;
  #published = 0;
  #batch: Uint8Array[] = [];
  #scheduled = false;
  #failure: MicroError | undefined;
  #cancelled = false;
  #wake: (() => void) | undefined;

  constructor(link: StreamLink, source: MessageStream, id: string) {
    this.#link = link;
    this.#source = source;
    this.#id = id;
  }

  /** Messages sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /**
   * The other side lets it send up to message `n` (grants are cumulative; an older one changes nothing), and takes
   * batches of up to `batch` bytes (0: none).
   */
  grant(n: number, bytes: number, batch = 0): void {
    if (Number.isSafeInteger(n) && n > this.#credit) this.#credit = n;
    if (bytes > this.#creditBytes) this.#creditBytes = bytes;
    if (Number.isSafeInteger(batch) && batch > 0) this.#batchBytes = batch;
    this.#wake?.();
  }

  /** Stops sending and cancels the source (its `return()`): the handler's signal fires, its generator ends. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#wake?.();
    this.#iterator?.return?.().catch(ignore);
  }

  async run(): Promise<'ended' | 'cancelled'> {
    const it = (this.#iterator = this.#source[Symbol.asyncIterator]());
    // A handler's reply stream hands its messages as JSON text: encoded here into a shared slab, not an ArrayBuffer
    // each (most of what a small message cost).
    const slab = readsText(it) ? new SlabEncoder() : undefined;
    const pull: () => Promise<IteratorResult<Uint8Array | string>> = slab
      ? () => (it as TextMessages).nextText()
      : () => it.next();
    let end: StreamEnd = { trailers: new Metadata() };
    try {
      for (;;) {
        // Pulled, never pushed: the next message is asked of the source only once it may be sent.
        if (!this.#mayPull()) this.#flush();
        while (!this.#mayPull() && !this.#cancelled) await new Promise<void>((r) => (this.#wake = r));
        if (this.#cancelled) return 'cancelled';
        const next = await pull();
        if (this.#cancelled) return 'cancelled';
        if (this.#failure) throw this.#failure;
        if (next.done) break;
        const message = slab ? slab.encode(next.value as string) : (next.value as Uint8Array);
        this.#sent++;
        this.#bytes += message.byteLength;
        this.#queue(message);
        // The event loop gets a turn after the first message: a reader in this process, and the socket, take it
        // before the producer fills the window.
        if (this.#sent === 1) await new Promise<void>((resolve) => nextTurn(resolve));
      }
      end = await this.#source.end;
    } catch (err) {
      if (this.#cancelled) return 'cancelled';
      end = { trailers: end.trailers, error: toMicroError(err, this.#id) };
      // The source may still hold resources (a generator in a finally): it is not read again.
      it.return?.().catch(ignore);
    }
    this.#flush();
    if (this.#failure && !end.error) end = { trailers: new Metadata(), error: this.#failure };
    this.#sendEnd(end);
    return 'ended';
  }

  /** Whether the credit lets it pull (and so send) one more message. */
  #mayPull(): boolean {
    return this.#sent < this.#credit && this.#bytes < this.#creditBytes;
  }

  /**
   * Messages pulled in one turn of the event loop go out together at its end, in one write to the socket (nats.js
   * writes what was published at the next microtask: one write per message otherwise). A message waits at most
   * that turn, the first not at all; the batch is bounded by the credit.
   */
  #queue(message: Uint8Array): void {
    this.#batch.push(message);
    // The first at once: its reader waits for it (a handler yielding back to back fills a whole window in a turn).
    if (this.#sent === 1) return this.#flush();
    if (this.#scheduled) return;
    this.#scheduled = true;
    nextTurn(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    if (this.#cancelled || this.#failure) return;
    try {
      if (this.#batchBytes > 0 && batch.length > 1) this.#sendBatches(batch);
      else
        for (const message of batch) {
          this.#link.sendData(this.#published + 1, message);
          this.#published++;
        }
    } catch (err) {
      // A message over the server's max_payload, or a closed connection: the stream ends with it, after the
      // messages already published.
      const code = (err as { code?: unknown }).code;
      this.#failure =
        code === 'MAX_PAYLOAD_EXCEEDED'
          ? errors.payloadTooLarge(
              this.#id,
              `stream message ${this.#published + 1} is larger than the NATS server's max_payload`,
              { retryable: false },
            )
          : errors.unavailable(
              this.#id,
              `stream message ${this.#published + 1} could not be sent: ${(err as Error).message}`,
              { retryable: false },
            );
    }
  };

  /**
   * Sends `messages` as batches of at most the reader's batch bytes (and the server's max_payload), in order; a
   * message too large for a batch goes alone.
   */
  #sendBatches(messages: Uint8Array[]): void {
    const limit = Math.min(this.#batchBytes, this.#link.maxPayload);
    let from = 0;
    while (from < messages.length) {
      let to = from;
      let size = 0;
      while (to < messages.length && size + 4 + messages[to]!.byteLength <= limit)
        size += 4 + messages[to++]!.byteLength;
      if (to - from <= 1) {
        this.#link.sendData(this.#published + 1, messages[from]!);
        this.#published++;
        from++;
        continue;
      }
      this.#link.sendBatch(this.#published + 1, messages.slice(from, to));
      this.#published += to - from;
      from = to;
    }
  }

  #sendEnd(end: StreamEnd): void {
    let h: MsgHdrs;
    try {
      h = metadataHeaders(this.#headers, end.trailers, this.#id, FRAMING, end.error);
    } catch (err) {
      // trailers that cannot be headers: the caller learns why instead of getting them
      const error = toMicroError(err, this.#id);
      h = metadataHeaders(this.#headers, new Metadata(), this.#id, FRAMING, error);
      end = { trailers: new Metadata(), error };
    }
    h.set(SEQ_HEADER, String(this.#published + 1));
    const body = end.error ? encoder.encode(JSON.stringify(end.error)) : EMPTY;
    try {
      this.#link.send(StreamOp.end, body, h);
    } catch {
      // the connection is closing: the other side learns it from its heartbeats
    }
  }

  readonly #headers = (): MsgHdrs => this.#link.headers();
}
