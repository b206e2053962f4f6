/** One HTTP request/response pair on the listener side: reading its body, writing and flushing its reply. */
import type { IncomingMessage, ServerResponse as NodeResponse } from 'node:http';
import {
  MicroError,
  errors,
  type Caller,
  CallerSignal,
  type Metadata,
  headers as names,
  type ServerResponse,
} from '../../core/index.js';
import { errorHeaderValue, responseHeaders } from './headers.js';
import { writeStream } from './stream-write.js';
import { asText } from './text-body.js';
import { LINGER_BYTES } from './read-all.js';

/** What an exchange needs from its listener. */
export interface ExchangeOwner {
  /** True once `close()` was called: replies then carry `Connection: close`. */
  readonly closing: boolean;
  /** Called once per exchange, when its response has finished or its connection closed. */
  settled(): void;
}

const encoder = new TextEncoder();

/**
 * A request being answered. `reply` is handed to the RequestHandler; it resolves on the response's `finish`
 * (every byte handed to the socket) and rejects when the connection closes first. As the request's `caller`, it
 * tells a host that queues requests when the caller has gone.
 */
export class Exchange implements Caller {
  readonly res: NodeResponse;
  /** `Micro-Id`, echoed on the response. */
  readonly id: string;
  /** The service named by the request (error ids), may be empty. */
  readonly service: string;
  readonly #owner: ExchangeOwner;
  /** The caller asked for Server-Sent Events (`Accept: text/event-stream`): a streamed reply is written so. */
  sse = false;
  #replied = false;
  #done = false;
  #resolve: (() => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;
  readonly #caller = new CallerSignal();

  constructor(owner: ExchangeOwner, res: NodeResponse, id: string, service: string) {
    this.#owner = owner;
    this.res = res;
    this.id = id;
    this.service = service;
    res.on('finish', this.#onFinish);
    res.on('close', this.#onClose);
  }

  get replied(): boolean {
    return this.#replied;
  }

  get gone(): boolean {
    return this.#caller.gone;
  }

  onGone(listener: () => void): () => void {
    return this.#caller.onGone(listener);
  }

  /** The Reply given to the handler. */
  readonly reply = (response: ServerResponse): Promise<void> => {
    if (this.#replied) return Promise.reject(new Error('reply was already called for this request'));
    this.#replied = true;
    if (this.#done || this.res.destroyed) {
      return Promise.reject(
        errors.unavailable(this.service || 'micro-fn', 'the caller closed the connection before the reply was sent'),
      );
    }
    const settled = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (response.stream) {
      const head = responseHeaders(response.metadata);
      head[names.id] = this.id;
      if (this.#owner.closing) head.connection = 'close';
      writeStream(this.res, response.stream, head, this.sse, this.service || 'micro-fn');
    } else this.#write(response.status, response.contentType, response.body, response, false);
    return settled;
  };

  /** Answers with an error JSON (body and `Micro-Error`) unless a reply was already written. */
  fail(error: MicroError, close = false): void {
    if (this.#replied || this.#done || this.res.destroyed) return;
    this.#replied = true;
    this.#write(error.code, 'application/json', encoder.encode(JSON.stringify(error)), { error }, close);
  }

  #write(
    status: number,
    contentType: string,
    body: Uint8Array,
    extra: { metadata?: Metadata; error?: MicroError },
    close: boolean,
  ): void {
    const res = this.res;
    const head = responseHeaders(extra.metadata);
    head[names.contentType] = contentType || 'application/octet-stream';
    head['content-length'] = body.byteLength;
    head[names.id] = this.id;
    if (extra.error) head[names.error] = errorHeaderValue(extra.error);
    if (close || this.#owner.closing) head.connection = 'close';
    try {
      res.writeHead(status, head);
    } catch (err) {
      // An invalid status or a metadata value Node refuses as a header: the caller learns why, as a 500.
      const error = errors.internal(
        this.service || 'micro-fn',
        `the reply could not be written as HTTP: ${(err as Error).message}`,
      );
      body = encoder.encode(JSON.stringify(error));
      const fallback: Record<string, string | number> = {
        [names.contentType]: 'application/json',
        'content-length': body.byteLength,
        [names.id]: this.id,
        [names.error]: errorHeaderValue(error),
      };
      if (close || this.#owner.closing) fallback.connection = 'close';
      res.writeHead(500, fallback);
      return void res.end(body);
    }
    res.end(asText(contentType, body));
  }

  readonly #onFinish = (): void => {
    this.#resolve?.();
    this.#settle();
  };

  readonly #onClose = (): void => {
    if (!this.res.writableFinished) {
      this.#reject?.(
        errors.unavailable(this.service || 'micro-fn', 'the connection closed before the reply was flushed'),
      );
      this.#caller.go();
    }
    this.#settle();
  };

  #settle(): void {
    if (this.#done) return;
    this.#done = true;
    this.#resolve = this.#reject = undefined;
    this.#owner.settled();
  }
}

/**
 * Collects `req`'s body. Calls `done(bytes)` at its end, or `done(undefined)` the moment it passes `max` bytes
 * (chunked bodies have no Content-Length to check up front); then it stops reading and buffers nothing more.
 * A body that arrived in one chunk is passed on as is, without a copy.
 */
export function readBody(req: IncomingMessage, max: number, done: (body: Uint8Array | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size <= max) {
      chunks.push(chunk);
      return;
    }
    req.off('data', onData);
    req.off('end', onEnd);
    req.pause();
    chunks.length = 0;
    done(undefined);
  };
  const onEnd = (): void => {
    done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
  };
  req.on('data', onData);
  req.on('end', onEnd);
}

/** How long a refused body is read and thrown away (LINGER_BYTES at most) so its client can read the answer. */
const LINGER_MS = 2000;

/**
 * Reads and throws away the rest of a refused request body, so that its client finishes sending and reads the
 * answer. Bounded: past LINGER_BYTES more, or LINGER_MS, the connection is cut.
 */
export function discard(req: IncomingMessage, already: number): void {
  let bytes = 0;
  const cut = () => req.socket.destroy();
  const timer = setTimeout(cut, LINGER_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes + already > already + LINGER_BYTES) {
      clearTimeout(timer);
      cut();
    }
  });
  const done = () => clearTimeout(timer);
  req.once('end', done).once('close', done);
  req.resume();
}
