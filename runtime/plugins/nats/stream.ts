/**
 * Streams over NATS (issue 16): one stream is one invocation, carried by a pair of inboxes, one per side. Each side
 * subscribes `<inbox>.*` and sends control messages to the other's `<inbox>.c` with its own `.c` subject as the reply
 * subject, so every message tells the receiver where to answer. The wire, also in the README's wire-format section:
 *
 * - Control messages carry `micro-stream: <op>`: `open` (the request of a call whose request streams, or the head of
 *   a streamed reply: its metadata as headers, body empty), `end` (`micro-seq: N+1` after N messages; trailers as
 *   headers, or the error as `micro-error` + error JSON body), `credit` (`micro-credit: N`, `micro-credit-bytes: B`: the
 *   reader lets the sender send up to message N, and start one while it sent fewer than B bytes in all), `cancel` and `ping`.
 * - Data message N (one encoded message, N counting from 1) goes to `<inbox>.N`, without headers or reply subject.
 *   To a peer whose subject is no stream inbox it goes as `micro-stream: data` with `micro-seq: N` (both are read).
 * - Flow control: a sender sends at most the credit granted (STREAM_WINDOW messages and STREAM_WINDOW_BYTES bytes,
 *   plus the one message that crosses it, ahead of the reader), and pulls the next message from its source only when
 *   it may send it; a receiver buffers at most the window. A gap in the
 *   sequence, or a message past the credit, ends the stream with an error: nothing is skipped silently.
 * - Liveness: each side sends a `ping` when it sent nothing for a heartbeat, and takes the other side for gone after
 *   the idle limit without a message, or at once when NATS answers one of its messages with no responders (the other
 *   side's subscription is gone: its process died or its connection closed). A handler whose caller is gone has its
 *   stream cancelled; a caller whose handler is gone gets an error.
 * - `cancel` from the caller ends the whole invocation (the handler's stream is cancelled, its request stream
 *   fails); from the handler it only means "I no longer read your request stream" (the caller stops sending).
 */
import type { Msg, MsgHdrs, NatsConnection, Subscription } from 'nats';
import { Metadata } from '../../core/metadata.js';
import { type MicroError, errors, toMicroError } from '../../core/errors.js';
import type { MessageStream, StreamEnd } from '../../core/stream.js';
import { header, metadataHeaders, metadataOf, replyError, SERVICE_ERROR, SERVICE_ERROR_CODE } from './headers.js';
import type { HeadersFactory } from './headers.js';

/** The header naming a stream message's op. */
export const STREAM_HEADER = 'micro-stream';
/** The sequence number of a `data` or `end` message. */
export const SEQ_HEADER = 'micro-seq';
/** A `credit` message's grant: the sender may send messages up to this sequence number. */
export const CREDIT_HEADER = 'micro-credit';
/** ... and start a message while it has sent fewer bytes than this (counted from the first message). */
export const CREDIT_BYTES_HEADER = 'micro-credit-bytes';

/** The ops of stream messages. */
export const StreamOp = {
  open: 'open',
  data: 'data',
  end: 'end',
  credit: 'credit',
  cancel: 'cancel',
  ping: 'ping',
} as const;
export type StreamOp = (typeof StreamOp)[keyof typeof StreamOp];

/** Messages a sender may have ahead of its reader: the bound of every stream buffer on either side. */
export const STREAM_WINDOW = 256;
/**
 * Bytes a sender may have ahead of its reader, besides the message count: a receiver buffers at most this plus one
 * message (a message is at most the server's max_payload, 1 MiB by default).
 */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
/** Milliseconds without sending after which a side sends a `ping`. */
export const STREAM_HEARTBEAT = 1000;
/** Milliseconds without a message from the other side after which it is taken for gone. */
export const STREAM_IDLE_LIMIT = 5000;

/** Flow control and liveness of NATS streams; the defaults suit most uses. */
export interface NatsStreamOptions {
  /** Messages a reader lets its sender have in flight (and so buffers at most). Default STREAM_WINDOW (256). */
  window?: number;
  /** Bytes a reader lets its sender have in flight (it buffers at most this plus one message). Default 1 MiB. */
  windowBytes?: number;
  /** Milliseconds of silence after which a side sends a ping. Default STREAM_HEARTBEAT (1000). */
  heartbeat?: number;
  /** Milliseconds of silence from the other side after which it is gone. Default STREAM_IDLE_LIMIT (5000). */
  idle?: number;
}

/** The last token of a side's control subject (`<inbox>.c`); data messages go to `<inbox>.<seq>`. */
const CONTROL_TOKEN = '.c';

/** Headers of stream framing: never metadata or trailers. */
const FRAMING = new Set([STREAM_HEADER, SEQ_HEADER, CREDIT_HEADER, CREDIT_BYTES_HEADER]);
const NOT_TRAILERS = new Set([
  ...FRAMING,
  'micro-error',
  SERVICE_ERROR.toLowerCase(),
  SERVICE_ERROR_CODE.toLowerCase(),
]);
const EMPTY = new Uint8Array(0);
/** Runs `f` in the next turn of the event loop, after I/O (setImmediate where there is one). */
const nextTurn: (f: () => void) => void =
  typeof (globalThis as { setImmediate?: unknown }).setImmediate === 'function'
    ? (f) => (globalThis as unknown as { setImmediate: (f: () => void) => void }).setImmediate(f)
    : (f) => setTimeout(f, 0);
const encoder = new TextEncoder();
const ignore = (): void => {};

/** The op of a message, or undefined for a message that is no stream message (a plain reply). */
export function streamOp(h: MsgHdrs | undefined): string | undefined {
  // Written in lower case by this file alone: an exact lookup (a plain call's reply or request pays a map lookup).
  return h?.get(STREAM_HEADER) || undefined;
}

/** Metadata of a message's headers without the stream framing. */
export function streamMetadata(h: MsgHdrs | undefined): Metadata {
  return metadataOf(h, FRAMING);
}

export interface StreamLinkOptions {
  nc: NatsConnection;
  headers: HeadersFactory;
  /** A fresh inbox: the subject this side listens on. */
  local: string;
  /** Where the other side listens, when known; the reply subject of each of its messages updates it. */
  remote?: string;
  /** The caller's side or the handler's: it tells what a `cancel` means. */
  side: 'caller' | 'handler';
  /** The id of the errors it raises (the service). */
  id: string;
  stream?: NatsStreamOptions;
  /** Messages that are no data, end, credit, cancel or ping: a caller's reply (`open` head, or a plain reply). */
  onReply?: (msg: Msg) => void;
}

/**
 * One side of a stream: its subscription, heartbeats, and the sender and receiver it carries (at most one each).
 * It closes (unsubscribes) once every hold on it is released.
 */
export class StreamLink {
  /** The subject this side's messages name as their reply: where the other side sends control messages. */
  readonly local: string;
  /** The inbox this side subscribed (`<inbox>.*`): `<inbox>.c` for control messages, `<inbox>.<seq>` for data. */
  readonly #base: string;
  readonly #options: StreamLinkOptions;
  readonly #nc: NatsConnection;
  readonly #window: number;
  readonly #windowBytes: number;
  readonly #idle: number;
  #remote: string | undefined;
  #sub: Subscription;
  #timer: ReturnType<typeof setInterval>;
  #lastSent = Date.now();
  #lastReceived = Date.now();
  /** Whether anything came from the other side: a caller waits for its reply by its own timeout until then. */
  #heard = false;
  #holds = 0;
  #closed = false;
  #gone: MicroError | undefined;
  readonly #goneListeners = new Set<(error: MicroError) => void>();
  sender: StreamSender | undefined;
  receiver: StreamReceiver | undefined;
  onReply: ((msg: Msg) => void) | undefined;

  constructor(options: StreamLinkOptions) {
    this.#options = options;
    this.#nc = options.nc;
    this.#base = options.local;
    this.local = `${options.local}${CONTROL_TOKEN}`;
    this.#remote = options.remote;
    this.onReply = options.onReply;
    this.#window = Math.max(1, Math.floor(options.stream?.window ?? STREAM_WINDOW));
    this.#windowBytes = Math.max(1, Math.floor(options.stream?.windowBytes ?? STREAM_WINDOW_BYTES));
    const heartbeat = Math.max(10, options.stream?.heartbeat ?? STREAM_HEARTBEAT);
    this.#idle = Math.max(heartbeat, options.stream?.idle ?? STREAM_IDLE_LIMIT);
    this.#sub = this.#nc.subscribe(`${this.#base}.*`, { callback: (err, msg) => err || this.#receive(msg) });
    this.#timer = setInterval(() => this.#tick(heartbeat), heartbeat);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** A fresh headers object. */
  headers(): MsgHdrs {
    return this.#options.headers();
  }

  get window(): number {
    return this.#window;
  }

  get windowBytes(): number {
    return this.#windowBytes;
  }

  /** Set once the other side is gone (or cancelled the whole stream): why. */
  get gone(): MicroError | undefined {
    return this.#gone;
  }

  /** Calls `listener` once the other side is gone (at once if it is); the function returned removes it. */
  onGone(listener: (error: MicroError) => void): () => void {
    if (this.#gone) {
      listener(this.#gone);
      return ignore;
    }
    this.#goneListeners.add(listener);
    return () => this.#goneListeners.delete(listener);
  }

  /** Keeps the link open until `release()`. */
  hold(): void {
    this.#holds++;
  }

  /** Releases one hold; the last one closes the link. */
  release(): void {
    if (--this.#holds <= 0) this.close();
  }

  /** Stops the heartbeats and unsubscribes; what arrives later is dropped. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      this.#sub.unsubscribe();
    } catch {
      // the connection is closed: so is the subscription
    }
  }

  /**
   * Publishes one stream message to the other side, this side's subject as its reply. Returns false when the other
   * side is not known yet, or the link is closed. Throws what publish throws (a message over max_payload).
   */
  send(op: StreamOp, data: Uint8Array = EMPTY, h: MsgHdrs = this.#options.headers()): boolean {
    if (this.#closed || this.#remote === undefined) return false;
    h.set(STREAM_HEADER, op);
    this.#nc.publish(this.#remote, data, { reply: this.local, headers: h });
    this.#lastSent = Date.now();
    return true;
  }

  /**
   * Sends data message `seq`: on `<the other side's inbox>.<seq>`, without headers or reply (the cheapest NATS
   * message there is). A peer whose subject is no stream inbox gets it on its subject with a `micro-seq` header.
   */
  sendData(seq: number, data: Uint8Array): boolean {
    const remote = this.#remote;
    if (this.#closed || remote === undefined) return false;
    if (remote.endsWith(CONTROL_TOKEN)) this.#nc.publish(`${remote.slice(0, -CONTROL_TOKEN.length)}.${seq}`, data);
    else {
      const h = this.#options.headers();
      h.set(SEQ_HEADER, String(seq));
      return this.send(StreamOp.data, data, h);
    }
    this.#lastSent = Date.now();
    return true;
  }

  /** Sends a control message; a failure (the connection closed) is left to the liveness checks. */
  control(op: StreamOp, values: Record<string, number> = {}): void {
    const h = this.#options.headers();
    for (const [name, value] of Object.entries(values)) h.set(name, String(value));
    try {
      this.send(op, EMPTY, h);
    } catch {
      // the connection is closing: the other side learns it from its heartbeats
    }
  }

  /** Sends `source` to the other side as it grants credit; resolves once it ended or was cancelled. */
  sendStream(source: MessageStream): Promise<'ended' | 'cancelled'> {
    const sender = (this.sender = new StreamSender(this, source, this.#options.id));
    this.hold();
    return sender.run().finally(() => this.release());
  }

  /** A receiver for the other side's stream; `lazy`: no credit until its reader first asks for a message. */
  receive(lazy: boolean): StreamReceiver {
    const receiver = (this.receiver = new StreamReceiver(this, this.#options.id, lazy));
    this.hold();
    receiver.end.then(() => this.release());
    return receiver;
  }

  /** Whether anything came from the other side yet. */
  get heard(): boolean {
    return this.#heard;
  }

  /** This side's reader stopped early: the other side is told; a caller also stops sending (its call is over). */
  stopReading(): void {
    this.control(StreamOp.cancel);
    if (this.#options.side === 'caller') this.sender?.cancel();
  }

  /** The other side is gone (or cancelled the whole stream): the receiver fails, the sender stops. */
  fail(error: MicroError): void {
    if (this.#gone) return;
    this.#gone = error;
    this.receiver?.fail(error);
    this.sender?.cancel();
    for (const listener of this.#goneListeners) listener(error);
    this.#goneListeners.clear();
  }

  #tick(heartbeat: number): void {
    const now = Date.now();
    // A caller waits for its first message by the call's own timeout (the handler may be queued, or slow to start).
    if ((this.#heard || this.#options.side === 'handler') && now - this.#lastReceived > this.#idle) {
      const other = this.#options.side === 'caller' ? 'the handler' : 'the caller';
      this.fail(
        errors.unavailable(this.#options.id, `${other} of the stream sent nothing for ${this.#idle} ms`, {
          retryable: false,
        }),
      );
      return;
    }
    if (now - this.#lastSent >= heartbeat) this.control(StreamOp.ping);
  }

  #receive(msg: Msg): void {
    if (this.#closed) return;
    const token = msg.subject.slice(this.#base.length + 1);
    if (token !== 'c') {
      // A data message: its subject's last token is its sequence number.
      this.#heard = true;
      this.#lastReceived = Date.now();
      this.receiver?.data(Number(token), msg.data);
      return;
    }
    const h = msg.headers;
    const op = streamOp(h);
    if (!op && h?.hasError && h.code === 503 && msg.data.length === 0) {
      // No responders: the other side's subject has no subscription (its process or connection is gone).
      const other = this.#options.side === 'caller' ? 'the handler' : 'the caller';
      const error = errors.unavailable(
        this.#options.id,
        `${other} of the stream is gone (no responders on its subject)`,
        {
          retryable: false,
          unreachable: this.#options.side === 'caller' && !this.#heard,
        },
      );
      this.fail(error);
      return;
    }
    this.#heard = true;
    this.#lastReceived = Date.now();
    if (msg.reply) this.#remote = msg.reply;
    switch (op) {
      case StreamOp.data:
        return this.receiver?.data(Number(header(h, SEQ_HEADER)), msg.data);
      case StreamOp.end:
        return this.receiver?.ended(Number(header(h, SEQ_HEADER)), h, msg.data);
      case StreamOp.credit:
        return this.sender?.grant(Number(header(h, CREDIT_HEADER)), Number(header(h, CREDIT_BYTES_HEADER) ?? Infinity));
      case StreamOp.cancel:
        if (this.#options.side === 'caller') return this.sender?.cancel();
        return this.fail(errors.timeout(this.#options.id, 'the caller cancelled the stream', { retryable: false }));
      case StreamOp.ping:
        return;
      default:
        this.onReply?.(msg);
    }
  }
}

/** Pulls a MessageStream and sends it as `data` messages within the credit, then its `end`. */
export class StreamSender {
  readonly #link: StreamLink;
  readonly #source: MessageStream;
  readonly #id: string;
  #iterator: AsyncIterator<Uint8Array> | undefined;
  #credit = 0;
  #creditBytes = 0;
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

  /** The other side lets it send up to message `n` (grants are cumulative; an older one changes nothing). */
  grant(n: number, bytes: number): void {
    if (Number.isSafeInteger(n) && n > this.#credit) this.#credit = n;
    if (bytes > this.#creditBytes) this.#creditBytes = bytes;
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
    let end: StreamEnd = { trailers: new Metadata() };
    try {
      for (;;) {
        // Pulled, never pushed: the next message is asked of the source only once it may be sent.
        if (!this.#mayPull()) this.#flush();
        while (!this.#mayPull() && !this.#cancelled) await new Promise<void>((r) => (this.#wake = r));
        if (this.#cancelled) return 'cancelled';
        const next = await it.next();
        if (this.#cancelled) return 'cancelled';
        if (this.#failure) throw this.#failure;
        if (next.done) break;
        this.#sent++;
        this.#bytes += next.value.byteLength;
        this.#queue(next.value);
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
   * that turn; the batch is bounded by the credit.
   */
  #queue(message: Uint8Array): void {
    this.#batch.push(message);
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
      error: errors.timeout(this.#id, 'the reader cancelled the stream', { retryable: false }),
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
    this.#link.control(StreamOp.credit, { [CREDIT_HEADER]: this.#granted, [CREDIT_BYTES_HEADER]: this.#grantedBytes });
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
