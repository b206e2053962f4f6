/**
 * Streams over a WebSocket whose server side is the Web API's (a Worker's after `accept()`, Deno's from
 * `Deno.upgradeWebSocket`): the request's messages as they arrive, and the reply written to it. No `node:` import.
 *
 * The wire, both ways: a TEXT frame is one JSON message; a BINARY frame is a control object. Server to client:
 * `{"metadata":{...}}` first, then the messages, then exactly one of `{"end":true,"trailers":{...}}` or
 * `{"error":<error JSON>,"trailers":{...}}`, then close 1000. Client to server: `{"end":true}` after its last
 * message. A close before the server's end cancels the invocation (the handler's `ctx.signal` fires).
 */
import {
  Metadata,
  MicroError,
  CallerSignal,
  errors,
  isMicroError,
  type Caller,
  type MessageStream,
  type ServerResponse,
  type StreamEnd,
} from '../../core/index.js';

/** The Web WebSocket as a fetch host hands the server's side of one. */
export interface ServerSocket {
  readonly readyState: number;
  /** Bytes sent and not yet on the network, where the host tells it (Deno does). */
  readonly bufferedAmount?: number;
  binaryType?: string;
  send(data: string | Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
  // Platform seam: Workers and Deno type their events apart; only `data`, `code` and `reason` are read.
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: any) => void): void;
}

/**
 * Request messages received and not read by the handler yet, in bytes: past it the stream ends with a 413 (a
 * WebSocket has no flow control of its own: a caller must not send far ahead of what it was answered).
 */
export const SOCKET_QUEUE_BYTES = 1_048_576;
/** Bytes the host may hold unsent (`bufferedAmount`) before the next message waits for it to drain. */
export const SOCKET_SEND_BYTES = 1_048_576;
/** How often a writer held by SOCKET_SEND_BYTES looks again. */
const DRAIN_POLL_MS = 5;

const OPEN = 1;
const NORMAL_CLOSE = 1000;
const encoder = /* @__PURE__ */ new TextEncoder();
const decoder = /* @__PURE__ */ new TextDecoder();
const NO_TRAILERS = /* @__PURE__ */ new Metadata();

/**
 * One WebSocket exchange: the caller's side (`caller`, for ctx.signal), the request's messages (`messages`) and
 * the reply (`reply`). Made before the socket is open (Deno's opens once the 101 went out): sends wait for it.
 */
export class SocketExchange implements Caller {
  readonly messages: SocketMessages;
  readonly #socket: ServerSocket;
  readonly #service: string;
  readonly #opened: Promise<boolean>;
  /** The server's end was sent: a close after it cancels nothing. */
  #finished = false;
  readonly #caller = new CallerSignal();

  constructor(socket: ServerSocket, service: string, maxMessage: number) {
    this.#socket = socket;
    this.#service = service || 'micro-fn';
    if ('binaryType' in socket) socket.binaryType = 'arraybuffer';
    this.messages = new SocketMessages(this.#service, maxMessage, (error) => this.fail(error));
    this.#opened = new Promise((resolve) => {
      if (socket.readyState === OPEN) resolve(true);
      socket.addEventListener('open', () => resolve(true));
      socket.addEventListener('close', () => resolve(false));
    });
    socket.addEventListener('message', (event: { data: unknown }) => this.#onMessage(event.data));
    socket.addEventListener('close', () => this.#onClose());
    socket.addEventListener('error', () => this.#onClose());
  }

  get gone(): boolean {
    return this.#caller.gone;
  }

  onGone(listener: () => void): () => void {
    return this.#caller.onGone(listener);
  }

  /**
   * Writes `reply`: its metadata, then its messages as the socket takes them (or its one body), then its end, then
   * closes. Resolves once it is all handed to the host, or the caller went away (the stream is then cancelled).
   */
  async reply(reply: ServerResponse): Promise<void> {
    const open = await this.#opened;
    if (!open || this.#finished || this.#caller.gone)
      return void (await reply.stream?.[Symbol.asyncIterator]().return?.());
    this.#control({ metadata: reply.metadata.toJSON() });
    if (!reply.stream) {
      if (reply.error) return this.#end(NO_TRAILERS, reply.error);
      this.#text(reply.body);
      return this.#end(NO_TRAILERS, undefined);
    }
    const it = reply.stream[Symbol.asyncIterator]();
    let error: MicroError | undefined;
    try {
      for (;;) {
        await this.#drained();
        if (this.#caller.gone) return void (await it.return?.());
        const next = await it.next();
        if (next.done) break;
        this.#text(next.value);
      }
      error = (await reply.stream.end).error;
    } catch (err) {
      error = isMicroError(err) ? err : errors.internal(this.#service, 'internal server error');
    }
    this.#end((await reply.stream.end).trailers, error);
  }

  /** Ends the exchange with `error` (a broken request: no JSON control, a message over the bounds) and closes. */
  fail(error: MicroError): void {
    if (this.#finished || this.#caller.gone) return;
    // The handler's next read throws it too: a request cut short never looks like a complete one.
    this.messages.fail(error);
    void this.#opened.then((open) => open && this.#end(NO_TRAILERS, error));
  }

  #end(trailers: Metadata, error: MicroError | undefined): void {
    if (this.#finished || this.#caller.gone) return;
    this.#finished = true;
    this.#control(error ? { error, trailers: trailers.toJSON() } : { end: true, trailers: trailers.toJSON() });
    this.#socket.close(NORMAL_CLOSE);
    if (!error) this.messages.close();
  }

  #text(message: Uint8Array): void {
    this.#send(decoder.decode(message));
  }

  #control(value: unknown): void {
    this.#send(encoder.encode(JSON.stringify(value)));
  }

  #send(data: string | Uint8Array<ArrayBuffer>): void {
    if (this.#caller.gone || this.#socket.readyState !== OPEN) return;
    try {
      this.#socket.send(data);
    } catch {
      // Closed under us: the close event follows and cancels the stream.
    }
  }

  /** Resolves once the host holds less than SOCKET_SEND_BYTES unsent (at once where it does not tell). */
  async #drained(): Promise<void> {
    while (!this.#caller.gone && (this.#socket.bufferedAmount ?? 0) > SOCKET_SEND_BYTES)
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
  }

  #onMessage(data: unknown): void {
    if (this.#finished || this.#caller.gone) return;
    if (typeof data === 'string') return this.messages.push(encoder.encode(data));
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? data : undefined;
    let control: unknown;
    try {
      control = bytes && JSON.parse(decoder.decode(bytes as Uint8Array));
    } catch {
      // answered below
    }
    if ((control as { end?: unknown } | undefined)?.end === true) return this.messages.finish();
    this.fail(
      errors.badRequest(this.#service, 'a binary frame must be the control object {"end":true}; send messages as text'),
    );
  }

  #onClose(): void {
    // After the server's end, the caller leaving cancels nothing.
    if (this.#finished) return void this.#caller.go(false);
    if (this.#caller.gone) return;
    this.messages.fail(new MicroError(this.#service, 499, 'the caller closed the WebSocket before the end'));
    this.#caller.go();
  }
}

/**
 * The request's messages as the handler reads them. A WebSocket pushes what arrives, so what waits unread is
 * bounded instead: SOCKET_QUEUE_BYTES in all and `maxMessage` each, else the stream ends with a 413.
 */
export class SocketMessages implements MessageStream, AsyncIterator<Uint8Array> {
  readonly end: Promise<StreamEnd>;
  readonly #service: string;
  readonly #maxMessage: number;
  readonly #broken: (error: MicroError) => void;
  #queue: Uint8Array[] = [];
  #at = 0;
  #queued = 0;
  #ended = false;
  #error: MicroError | undefined;
  #over = false;
  #wake: (() => void) | undefined;
  #resolveEnd!: (end: StreamEnd) => void;

  constructor(service: string, maxMessage: number, broken: (error: MicroError) => void) {
    this.#service = service;
    this.#maxMessage = maxMessage;
    this.#broken = broken;
    this.end = new Promise((resolve) => (this.#resolveEnd = resolve));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this;
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    for (;;) {
      if (this.#at < this.#queue.length) {
        const message = this.#queue[this.#at]!;
        this.#queue[this.#at++] = EMPTY; // read by index; the array is dropped once read through
        this.#queued -= message.byteLength;
        if (this.#at === this.#queue.length) ((this.#queue = []), (this.#at = 0));
        return { done: false, value: message };
      }
      if (this.#over || this.#ended || this.#error) return this.#settle();
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** The handler reads no more: what arrives from now on is dropped. */
  async return(): Promise<IteratorResult<Uint8Array>> {
    this.close();
    return { done: true, value: undefined };
  }

  /** A message arrived (a text frame). */
  push(message: Uint8Array): void {
    if (this.#over || this.#ended || this.#error) return;
    if (message.byteLength > this.#maxMessage)
      return this.#break(
        errors.payloadTooLarge(this.#service, `a stream message is longer than ${this.#maxMessage} bytes`),
      );
    if (this.#queued + message.byteLength > SOCKET_QUEUE_BYTES)
      return this.#break(
        errors.payloadTooLarge(
          this.#service,
          `more than ${SOCKET_QUEUE_BYTES} bytes of messages arrived before the handler read them: send fewer ahead of the replies`,
        ),
      );
    this.#queue.push(message);
    this.#queued += message.byteLength;
    this.#wakeUp();
  }

  /** The caller sent `{"end":true}`. */
  finish(): void {
    this.#ended = true;
    this.#wakeUp();
  }

  /** The stream is cut (the caller went): the handler's next read throws `error`. */
  fail(error: MicroError): void {
    if (this.#ended) return;
    this.#error ??= error;
    this.#wakeUp();
  }

  /** Reads no more: settles `end` cleanly unless it already ended otherwise. */
  close(): void {
    this.#queue = [];
    this.#at = 0;
    this.#over = true;
    this.#settle(false);
    this.#wakeUp();
  }

  #break(error: MicroError): void {
    this.fail(error);
    this.#broken(error);
  }

  #settle(throwing = true): IteratorResult<Uint8Array> {
    const error = this.#over ? undefined : this.#error;
    this.#over = true;
    this.#resolveEnd(error ? { trailers: NO_TRAILERS, error } : { trailers: NO_TRAILERS });
    if (error && throwing) throw error;
    return { done: true, value: undefined };
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

const EMPTY = /* @__PURE__ */ new Uint8Array(0);
