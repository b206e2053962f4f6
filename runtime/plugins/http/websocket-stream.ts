/**
 * One WebSocket stream on the Node listener, once its handshake was accepted (websocket.ts): the request's messages
 * as a MessageStream the handler pulls, the reply written as the handler yields it, the caller that is gone once the
 * client closes before the server's end, and the 101, sent only when the handler first reads or replies.
 */
import type { Socket } from 'node:net';
import {
  Metadata,
  CallerSignal,
  MicroError,
  errors,
  toMicroError,
  type Caller,
  type MessageStream,
  type RequestHandler,
  type ServerRequest,
  type ServerResponse,
  type StreamEnd,
} from '../../core/index.js';
import { errorHeaderValue } from './headers.js';
import { CLOSE, FrameReader, OPCODE, closeFrame, frame, isJson, type FrameError } from './websocket-frames.js';

/**
 * Bytes of request messages read from the socket and not yet taken by the handler: past it the socket is paused until
 * the handler reads. What waits here is this plus one socket read (64 KiB) and one message being reassembled.
 */
export const WS_REQUEST_BUFFER = 1024 * 1024;

/** Milliseconds the server waits for the client's close frame after its own, before it drops the connection. */
const CLOSE_WAIT = 1000;

/** Bytes of frames written before the writer gives the event loop a turn (as stream-write.ts's BATCH_BYTES). */
const BATCH_BYTES = 16 * 1024;

const encoder = new TextEncoder();
const ignore = (): void => {};
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** What a stream needs from the listener. */
export interface WebSocketOptions {
  handler: RequestHandler;
  /** The longest message a client may send (the listener's body limit): past it, close 1009 and a 413. */
  maxMessage: number;
}

/** An error answered to the handshake as HTTP (no 101), then the connection closes. */
export function writeError(socket: Socket, error: MicroError, extra: Record<string, string> = {}, id?: string): void {
  const body = JSON.stringify(error);
  let head = `HTTP/1.1 ${error.code} ${error.status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  head += `Micro-Error: ${errorHeaderValue(error)}\r\n`;
  if (id) head += `Micro-Id: ${id}\r\n`;
  for (const [k, v] of Object.entries(extra)) head += `${k}: ${v}\r\n`;
  socket.end(`${head}Connection: close\r\n\r\n${body}`);
  socket.destroySoon();
}

type State = 'pending' | 'open' | 'over';

/**
 * One WebSocket stream: the request's messages as a MessageStream the handler pulls, the reply written as the
 * handler yields it, and the caller, which is gone once the client closes before the server's end.
 */
export class WebSocketStream implements Caller {
  readonly #socket: Socket;
  /** `Sec-WebSocket-Accept`, for the 101. */
  readonly #accept: string;
  readonly #request: ServerRequest;
  readonly #service: string;
  readonly #reader: FrameReader;
  #head: Buffer | undefined;
  #state: State = 'pending';
  #replied = false;
  /** The server sent its end (or error) and its close: the stream is over on its side. */
  #closeSent = false;
  #peerClosed = false;
  readonly #caller = new CallerSignal();
  /** How the session failed (a bad frame, an over-limit message) or was cancelled; the request stream throws it. */
  #failure: MicroError | undefined;
  /** The client broke the framing: nothing more it sends can be read. */
  #broken = false;
  /** Waiting in the writer for 'drain', or for the reply's next message: woken when the session fails. */
  #stopWriter: (() => void) | undefined;

  // The request stream.
  readonly #queue: Buffer[] = [];
  #queueHead = 0;
  #queued = 0;
  #requestEnded = false;
  #requestDone = false;
  #wake: (() => void) | undefined;
  #resolveRequestEnd!: (end: StreamEnd) => void;
  readonly #requestStream: MessageStream;

  constructor(socket: Socket, head: Buffer, accept: string, request: ServerRequest, options: WebSocketOptions) {
    this.#socket = socket;
    this.#head = head.length > 0 ? head : undefined;
    this.#accept = accept;
    this.#request = request;
    this.#service = request.service || 'micro-fn';
    this.#reader = new FrameReader(options.maxMessage);
    const end = new Promise<StreamEnd>((resolve) => (this.#resolveRequestEnd = resolve));
    const iterator: AsyncIterator<Uint8Array> = {
      next: () => this.#nextMessage(),
      return: async () => {
        this.#stopReading();
        return { done: true, value: undefined };
      },
    };
    this.#requestStream = { end, [Symbol.asyncIterator]: () => iterator };
    request.stream = this.#requestStream;
    request.caller = this;
    // Nothing is read until the 101: a client sends no frame before it anyway.
    socket.pause();
    socket.on('error', ignore);
    socket.on('data', this.#onData);
    socket.once('end', this.#onEnd);
    socket.once('close', this.#onClose);
  }

  get gone(): boolean {
    return this.#caller.gone;
  }

  onGone(listener: () => void): () => void {
    return this.#caller.onGone(listener);
  }

  dispatch(handler: RequestHandler): void {
    let result: Promise<void>;
    try {
      result = Promise.resolve(handler(this.#request, this.#reply));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      () => {
        this.#stopReading();
        if (!this.#replied) this.#fail(errors.internal(this.#service, 'the handler finished without a reply'));
      },
      (err: unknown) => {
        if (!this.#replied) this.#fail(toMicroError(err, this.#service));
      },
    );
  }

  /** Sends the 101: the invocation has started. */
  #open(): void {
    if (this.#state !== 'pending') return;
    this.#state = 'open';
    const id = this.#request.id;
    this.#socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${this.#accept}\r\nMicro-Id: ${id}\r\n\r\n`,
    );
    const head = this.#head;
    this.#head = undefined;
    if (head) this.#onData(head);
    if (!this.#paused()) this.#socket.resume();
  }

  // --- The reply --------------------------------------------------------------------------------------------------

  readonly #reply = async (response: ServerResponse): Promise<void> => {
    if (this.#replied) throw new Error('reply was already called for this request');
    this.#replied = true;
    if (this.#state === 'pending' && response.error) {
      // Nothing started: an ordinary HTTP answer (a refusal keeps its retryable 503).
      this.#state = 'over';
      this.#closeSent = true;
      this.#stopReading();
      writeError(this.#socket, response.error!, {}, this.#request.id);
      return this.#handedOver;
    }
    if (this.#state === 'pending' && !this.#failure) this.#open();
    if (this.#state === 'over' || this.#failure) {
      if (response.stream) void Promise.resolve(response.stream[Symbol.asyncIterator]().return?.()).catch(ignore);
      throw this.#failure ?? errors.unavailable(this.#service, 'the WebSocket closed before the reply was sent');
    }
    this.#control({ metadata: response.metadata.toJSON() });
    if (response.error) return this.#finish(response.error, undefined);
    if (!response.stream) {
      this.#send(OPCODE.text, response.body);
      return this.#finish(undefined, undefined);
    }
    const stream = response.stream;
    const it = stream[Symbol.asyncIterator]();
    let end: StreamEnd | undefined;
    let error: MicroError | undefined;
    try {
      let since = 0;
      for (;;) {
        if (this.#failure) break;
        const r = await this.#racing(it.next());
        if (!r || r.done || this.#failure) break;
        since += this.#send(OPCODE.text, r.value);
        if (this.#socket.writableNeedDrain) await this.#racing(new Promise((r) => this.#socket.once('drain', r)));
        else if (since >= BATCH_BYTES) {
          since = 0;
          await turn();
        }
      }
      if (!this.#failure) {
        end = await stream.end;
        error = end.error;
      }
    } catch (err) {
      error = toMicroError(err, this.#service);
    }
    if (this.#failure) {
      // Cancelled (the client closed) or failed (a bad frame): the handler stops; the failure was sent, if it could be.
      void Promise.resolve(it.return?.()).catch(ignore);
      throw this.#failure;
    }
    return this.#finish(error, end?.trailers);
  };

  /** Resolves with `work`'s result, or undefined as soon as the session fails (the client went, a bad frame). */
  #racing<T>(work: Promise<T>): Promise<T | undefined> {
    if (this.#failure) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      this.#stopWriter = () => resolve(undefined);
      work.then(resolve, reject);
    }).finally(() => (this.#stopWriter = undefined));
  }

  /** The server's end: its end or error control frame, then a close 1000; resolves once the socket took them. */
  #finish(error: MicroError | undefined, trailers: Metadata | undefined): Promise<void> {
    const tail = (trailers ?? new Metadata()).toJSON();
    this.#control(error ? { error, trailers: tail } : { end: true, trailers: tail });
    this.#stopReading();
    this.#close(CLOSE.normal);
    return this.#handedOver;
  }

  /** Resolves once the socket has taken what was written so far; rejects when it closes first. */
  get #handedOver(): Promise<void> {
    const socket = this.#socket;
    const lost = () => errors.unavailable(this.#service, 'the WebSocket closed before the reply was sent');
    if (socket.destroyed) return Promise.reject(lost());
    if (socket.writableFinished) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onClose = () => (socket.writableFinished ? resolve() : reject(lost()));
      socket.once('close', onClose);
      const done = () => {
        socket.off('close', onClose);
        resolve();
      };
      if (socket.writableEnded) socket.once('finish', done);
      else socket.write('', (err) => (err ? undefined : done()));
    });
  }

  #control(value: object): void {
    this.#send(OPCODE.binary, encoder.encode(JSON.stringify(value)));
  }

  /** Writes one frame; returns its size. */
  #send(opcode: number, payload: Uint8Array): number {
    if (this.#closeSent || this.#socket.destroyed) return 0;
    const bytes = frame(opcode, payload);
    this.#socket.write(bytes);
    return bytes.length;
  }

  /** Sends the server's close (once), then waits CLOSE_WAIT for the client's before it drops the connection. */
  #close(code: number, reason = ''): void {
    if (this.#closeSent) return;
    if (this.#state === 'open' && !this.#socket.destroyed) this.#socket.write(closeFrame(code, reason));
    this.#closeSent = true;
    this.#state = 'over';
    if (this.#peerClosed || this.#socket.destroyed) return void this.#socket.end();
    // The client's close comes through the reader: keep reading control frames, whatever the handler took.
    if (!this.#broken) this.#socket.resume();
    setTimeout(() => this.#socket.destroy(), CLOSE_WAIT).unref();
  }

  /**
   * Ends the session on the server's side with `error` (a bad frame, an over-limit message, a handler that failed
   * without a reply): the request stream throws it, a reply being written stops (its handler's signal fires), the
   * client gets it as the error control frame, then a close with `code`.
   */
  #fail(error: MicroError, code: number = CLOSE.normal): void {
    if (this.#failure || this.#closeSent) return;
    if (this.#state === 'pending') {
      this.#state = 'over';
      this.#closeSent = true;
      this.#failure = error;
      this.#stopReading();
      return writeError(this.#socket, error, {}, this.#request.id);
    }
    this.#failure = error;
    this.#wakeReader();
    this.#stopWriter?.();
    if (!this.#replied) this.#control({ metadata: {} });
    this.#control({ error, trailers: {} });
    this.#close(code, error.detail);
    this.#caller.go();
  }

  // --- The request stream -----------------------------------------------------------------------------------------

  async #nextMessage(): Promise<IteratorResult<Uint8Array>> {
    this.#open();
    for (;;) {
      if (this.#failure) {
        this.#stopReading();
        throw this.#failure;
      }
      if (this.#requestDone) return { done: true, value: undefined };
      if (this.#queueHead < this.#queue.length) {
        const message = this.#queue[this.#queueHead]!;
        this.#queue[this.#queueHead++] = undefined as unknown as Buffer;
        if (this.#queueHead === this.#queue.length) this.#queue.length = this.#queueHead = 0;
        // A queue that never runs dry (a client that keeps ahead) is compacted now and then, not left to grow.
        else if (this.#queueHead >= 1024) {
          this.#queue.splice(0, this.#queueHead);
          this.#queueHead = 0;
        }
        this.#queued -= message.length;
        if (!this.#paused() && this.#state === 'open') this.#socket.resume();
        return { done: false, value: message };
      }
      if (this.#requestEnded) {
        this.#stopReading();
        return { done: true, value: undefined };
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** The handler reads no more of the request (it returned, or took the one request of a server stream). */
  #stopReading(): void {
    if (this.#requestDone) return;
    this.#requestDone = true;
    this.#queue.length = this.#queueHead = this.#queued = 0;
    this.#resolveRequestEnd(
      this.#failure ? { trailers: new Metadata(), error: this.#failure } : { trailers: new Metadata() },
    );
    // What the client still sends is read and dropped: its close must still be seen.
    if (this.#state === 'open') this.#socket.resume();
  }

  #paused(): boolean {
    return this.#queued >= WS_REQUEST_BUFFER;
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#read(chunk);
    } catch {
      // Unreachable by design; a bug here must cost one connection, never the process.
      this.#broken = true;
      this.#cancel('the WebSocket failed');
      this.#socket.destroy();
    }
  };

  #read(chunk: Buffer): void {
    if (this.#state === 'pending') {
      // Bytes before the 101 (a client that did not wait): kept, bounded by the socket's pause.
      this.#head = this.#head ? Buffer.concat([this.#head, chunk]) : chunk;
      this.#socket.pause();
      return;
    }
    if (this.#peerClosed || this.#broken) return;
    let events;
    try {
      events = this.#reader.push(chunk);
    } catch (err) {
      const e = err as FrameError;
      this.#broken = true;
      const error =
        e.code === CLOSE.tooBig
          ? errors.payloadTooLarge(this.#service, `a WebSocket message is longer than the limit: ${e.message}`)
          : errors.badRequest(this.#service, `WebSocket protocol error: ${e.message}`);
      return this.#fail(error, e.code);
    }
    for (const event of events) {
      if (this.#failure && event.kind !== 'close') continue;
      switch (event.kind) {
        case 'text':
          if (this.#requestEnded) {
            this.#fail(
              errors.badRequest(this.#service, "a message came after the request stream's end"),
              CLOSE.protocolError,
            );
            continue;
          }
          if (!isJson(event.data)) {
            this.#fail(
              errors.badRequest(this.#service, 'a WebSocket text frame is not one JSON value'),
              CLOSE.invalidPayload,
            );
            continue;
          }
          if (this.#requestDone) continue;
          this.#queue.push(event.data);
          this.#queued += event.data.length;
          break;
        case 'binary':
          if (!isEnd(event.data)) {
            this.#fail(
              errors.badRequest(this.#service, 'a WebSocket binary frame from the client must be {"end":true}'),
              CLOSE.unsupportedData,
            );
            continue;
          }
          this.#requestEnded = true;
          break;
        case 'ping':
          // Unanswered while the client does not read what is written: a ping flood must not fill memory with
          // pongs (answering only some pings is allowed: RFC 6455 §5.5.3).
          if (!this.#closeSent && !this.#socket.writableNeedDrain) this.#socket.write(frame(OPCODE.pong, event.data));
          break;
        case 'pong':
          break;
        case 'close':
          this.#peerClosed = true;
          this.#onPeerClose(event.code);
          break;
      }
    }
    this.#wakeReader();
    if (this.#paused() && !this.#requestDone) this.#socket.pause();
  }

  /** The client's close: after the server's end, the close handshake; before it, a cancel. */
  #onPeerClose(code: number): void {
    if (this.#closeSent) return void this.#socket.end();
    this.#cancel(`the caller closed the WebSocket (${code}) before the stream's end`);
    this.#socket.write(closeFrame(code === CLOSE.noStatus ? CLOSE.normal : code));
    this.#closeSent = true;
    this.#state = 'over';
    this.#socket.end();
  }

  /** The caller went before the server's end: the stream is cancelled (499) both ways. */
  #cancel(detail: string): void {
    this.#failure ??= new MicroError(this.#service, 499, detail);
    this.#wakeReader();
    this.#stopWriter?.();
    this.#caller.go();
  }

  readonly #onEnd = (): void => {
    if (!this.#closeSent) this.#cancel("the caller dropped the WebSocket connection before the stream's end");
    this.#socket.end();
  };

  readonly #onClose = (): void => {
    if (!this.#closeSent || this.#state === 'pending')
      this.#cancel("the WebSocket connection closed before the stream's end");
    this.#state = 'over';
    this.#closeSent = true;
  };
}

/** True for the client's one control object, `{"end":true}`. */
function isEnd(data: Buffer): boolean {
  try {
    const value = JSON.parse(data.toString('utf8')) as { end?: unknown };
    return value !== null && typeof value === 'object' && value.end === true;
  } catch {
    return false;
  }
}
