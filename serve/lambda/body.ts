/**
 * Request bodies of the local Lambda API, read within bounds: one operation's limit, refused from
 * `Content-Length` before a byte is read (413, AWS's shape), a chunked body read only up to it; and the bytes
 * being received at once across every request, held until the reply is sent (429 past it, AWS's
 * TooManyRequestsException, with Retry-After). A refused body is drained when small enough for its client to
 * read the answer, else the connection is closed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { discard } from '../../runtime/plugins/http/exchange.js';
import { LINGER_BYTES } from '../../runtime/plugins/http/read-all.js';
import { apiErrors, type LambdaApiError } from './api-error.js';

/** The bytes every request of one API may hold at once while it is received and handled. */
export class ReceiveBudget {
  readonly max: number;
  #bytes = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Takes `n` bytes if they fit. */
  take(n: number): boolean {
    if (this.#bytes + n > this.max) return false;
    this.#bytes += n;
    return true;
  }

  give(n: number): void {
    this.#bytes = Math.max(0, this.#bytes - n);
  }
}

export interface ReceiveOptions {
  /** Largest body of the operation, in bytes. */
  max: number;
  /** Its name in the 413 (`CreateFunction`, `InvokeFunction`). */
  operation: string;
  /** The error past `max`; default AWS's RequestEntityTooLargeException. */
  tooLarge?: (message: string) => LambdaApiError;
  budget: ReceiveBudget;
}

/**
 * The body of `req`, within `options`. Bytes taken from the budget are given back when `res` closes (the
 * reply sent, or the connection gone), so a body being handled still counts. Rejects with a LambdaApiError.
 */
export function receive(req: IncomingMessage, res: ServerResponse, options: ReceiveOptions): Promise<Buffer> {
  const { max, operation, budget } = options;
  const tooLarge = () =>
    (options.tooLarge ?? apiErrors.entityTooLarge)(
      `Request must be smaller than ${max} bytes for the ${operation} operation`,
    );
  const busy = () =>
    apiErrors.tooManyRequests(
      `The local Lambda API is receiving ${budget.bytes} bytes of requests, its limit is ${budget.max}: try again shortly`,
    );
  let held = 0;
  res.once('close', () => budget.give(held));
  const hold = (n: number): boolean => {
    if (!budget.take(n)) return false;
    held += n;
    return true;
  };
  const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  // Refused before reading: drained if it is small enough for its client to finish and read the answer.
  const refuse = (error: LambdaApiError, already: number): Promise<never> => {
    if (length !== undefined && length - already <= LINGER_BYTES && !expectsContinue(req)) discard(req, already);
    else res.setHeader('connection', 'close');
    return Promise.reject(error);
  };
  if (length !== undefined && length > max) return refuse(tooLarge(), 0);
  if (length !== undefined && !hold(length)) return refuse(busy(), 0);
  if (expectsContinue(req)) res.writeContinue();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (error: LambdaApiError) => {
      req.off('data', onData).off('end', onEnd);
      chunks.length = 0;
      // Mid-stream (chunked): what was sent is not read further, and the connection goes with the answer.
      req.pause();
      res.setHeader('connection', 'close');
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) return stop(tooLarge());
      if (length === undefined && !hold(chunk.length)) return stop(busy());
      chunks.push(chunk);
    };
    const onEnd = () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    req.on('data', onData).on('end', onEnd);
    req.once('error', reject);
  });
}

function expectsContinue(req: IncomingMessage): boolean {
  return /100-continue/i.test(req.headers.expect ?? '');
}
