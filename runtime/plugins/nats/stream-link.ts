/** One side of a NATS stream: its inbox, heartbeats, and the sender and receiver it carries (the wire: stream.ts). */
import type { Msg, MsgHdrs, NatsConnection, Subscription } from 'nats';
import { MicroError, errors } from '../../core/errors.js';
import type { MessageStream } from '../../core/stream.js';
import { header, type HeadersFactory } from './headers.js';
import {
  BATCH_HEADER,
  CONTROL_TOKEN,
  CREDIT_BYTES_HEADER,
  CREDIT_HEADER,
  SEQ_HEADER,
  STREAM_HEADER,
  STREAM_HEARTBEAT,
  STREAM_IDLE_LIMIT,
  STREAM_WINDOW,
  STREAM_WINDOW_BYTES,
  StreamOp,
  packBatch,
  streamOp,
  type NatsStreamOptions,
} from './stream.js';
import { StreamReceiver } from './stream-receiver.js';
import { StreamSender } from './stream-sender.js';

const EMPTY = new Uint8Array(0);
const ignore = (): void => {};

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

  /** Sends messages `first` to `first + messages.length - 1` as one batch on `<the other side's inbox>.<first>-<last>`. */
  sendBatch(first: number, messages: readonly Uint8Array[]): void {
    const remote = this.#remote;
    if (this.#closed || remote === undefined) return;
    if (!remote.endsWith(CONTROL_TOKEN)) {
      for (let i = 0; i < messages.length; i++) this.sendData(first + i, messages[i]!);
      return;
    }
    const base = remote.slice(0, -CONTROL_TOKEN.length);
    this.#nc.publish(`${base}.${first}-${first + messages.length - 1}`, packBatch(messages));
    this.#lastSent = Date.now();
  }

  /** The largest NATS message the server takes (its max_payload; 1 MiB when not known). */
  get maxPayload(): number {
    return this.#nc.info?.max_payload ?? 1024 * 1024;
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
      // A data message: its subject's last token is its sequence number, or a batch's first and last.
      this.#heard = true;
      this.#lastReceived = Date.now();
      const dash = token.indexOf('-');
      if (dash === -1) this.receiver?.data(Number(token), msg.data);
      else this.receiver?.batch(Number(token.slice(0, dash)), Number(token.slice(dash + 1)), msg.data);
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
        return this.sender?.grant(
          Number(header(h, CREDIT_HEADER)),
          Number(header(h, CREDIT_BYTES_HEADER) ?? Infinity),
          Number(header(h, BATCH_HEADER) ?? 0),
        );
      case StreamOp.cancel:
        if (this.#options.side === 'caller') return this.sender?.cancel();
        return this.fail(
          new MicroError(this.#options.id, 499, 'the caller cancelled the stream', { retryable: false }),
        );
      case StreamOp.ping:
        return;
      default:
        this.onReply?.(msg);
    }
  }
}
