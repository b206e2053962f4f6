/**
 * How streams travel over HTTP (issue 16), both framings, for the listener and the fetch client. No `node:` import.
 *
 * - **NDJSON** (`application/x-ndjson`, the default): one JSON value per line. A request stream (client, bidi) is
 *   always NDJSON. A reply's end is told by HTTP trailers: `Micro-Status` (200, or the error's code), `Micro-Error`
 *   (the error JSON, when it ended with one) and the handler's trailers.
 * - **Server-Sent Events** (`text/event-stream`, when the caller's `Accept` asks for it; what a browser's
 *   EventSource and the micro-fn client use): each message is `data: <json>`; the stream closes with exactly one of
 *   `event: end` + `data: <trailers as a JSON object>` or `event: error` + `data: <error JSON>`. A stream that stops
 *   without either was cut (the connection was lost).
 *
 * A JSON value never holds a raw line break (JSON.stringify escapes them in strings), so one value is one line.
 */
import { MicroError, Metadata, errors, isMicroError, parseError, type MessageStream } from '../../core/index.js';

export const NDJSON = 'application/x-ndjson';
export const EVENT_STREAM = 'text/event-stream';
/** The trailer that carries a stream's end status over NDJSON. */
export const STATUS_TRAILER = 'micro-status';

const encoder = /* @__PURE__ */ new TextEncoder();
const decoder = /* @__PURE__ */ new TextDecoder();
const NEWLINE = 0x0a;

/** True when a Content-Type (or the bare media type) is NDJSON. */
export function isNdjson(contentType: string | null | undefined): boolean {
  // Asked of every request: most are `application/json`, too short to be NDJSON, and are told so at once.
  if (!contentType || contentType.length < NDJSON.length) return false;
  return contentType.split(';', 1)[0]!.trim().toLowerCase() === NDJSON;
}

/** True when an `Accept` header asks for Server-Sent Events. */
export function acceptsEventStream(accept: string | null | undefined): boolean {
  if (typeof accept !== 'string') return false;
  // Asked of every request: the micro-fn client's Accept names it in lower case, found without a copy.
  return accept.includes(EVENT_STREAM) || accept.toLowerCase().includes(EVENT_STREAM);
}

/** One message as a frame of `framing`. */
export function frame(message: Uint8Array, sse: boolean): Uint8Array {
  const head = sse ? 6 : 0;
  const tail = sse ? 2 : 1;
  const out = new Uint8Array(head + message.byteLength + tail);
  if (sse) out.set(SSE_DATA, 0);
  out.set(message, head);
  out.fill(NEWLINE, head + message.byteLength);
  return out;
}
const SSE_DATA = /* @__PURE__ */ encoder.encode('data: ');

/** The SSE events that close a stream: `end` with its trailers, or `error` with the error JSON. */
export function sseEnd(trailers: Metadata, error: MicroError | undefined): string {
  return error
    ? `event: error\ndata: ${JSON.stringify(error)}\n\n`
    : `event: end\ndata: ${JSON.stringify(trailers.toJSON())}\n\n`;
}

/**
 * Splits bytes into lines (without their `\n`, and a `\r` before it), with a bound: a line longer than `max` bytes
 * is an error (413) rather than a buffer that grows. Holds at most one partial line.
 */
export class LineSplitter {
  readonly #max: number;
  #partial: Uint8Array[] = [];
  #partialSize = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Set at a line over the bound (a 413): the lines before it were returned, none after it will be. */
  error: MicroError | undefined;

  /** The whole lines `chunk` completes, up to a line over the bound (then `error` is set). */
  push(chunk: Uint8Array, service: string): Uint8Array[] {
    const lines: Uint8Array[] = [];
    if (this.error) return lines;
    try {
      let start = 0;
      for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, start)) {
        lines.push(this.#take(chunk.subarray(start, i), service));
        start = i + 1;
      }
      if (start < chunk.byteLength) {
        const rest = chunk.subarray(start);
        this.#partialSize += rest.byteLength;
        if (this.#partialSize > this.#max) throw lineTooLong(service, this.#max);
        this.#partial.push(rest);
      }
    } catch (err) {
      this.error = err as MicroError;
      this.#partial = [];
      this.#partialSize = 0;
    }
    return lines;
  }

  /** The last line, when the bytes ended without a `\n` after it. */
  flush(service: string): Uint8Array | undefined {
    if (this.#partialSize === 0) return undefined;
    return this.#take(new Uint8Array(0), service);
  }

  #take(tail: Uint8Array, service: string): Uint8Array {
    let line = tail;
    if (this.#partialSize > 0) {
      const size = this.#partialSize + tail.byteLength;
      if (size > this.#max) throw lineTooLong(service, this.#max);
      line = new Uint8Array(size);
      let at = 0;
      for (const part of this.#partial) {
        line.set(part, at);
        at += part.byteLength;
      }
      line.set(tail, at);
      this.#partial = [];
      this.#partialSize = 0;
    } else if (line.byteLength > this.#max) throw lineTooLong(service, this.#max);
    return line.byteLength > 0 && line[line.byteLength - 1] === 0x0d ? line.subarray(0, -1) : line;
  }
}

function lineTooLong(service: string, max: number): MicroError {
  return errors.payloadTooLarge(service || 'micro-fn', `a stream message is longer than ${max} bytes`);
}

/** One parsed SSE event: a message's bytes, or how the stream ended. */
export type SseEvent =
  { kind: 'message'; data: Uint8Array } | { kind: 'end'; trailers: Metadata } | { kind: 'error'; error: MicroError };

/**
 * Reads SSE lines (from LineSplitter) into events: the framing above, and nothing else of SSE (no `id`, no
 * `retry`, one `data` line per event, as this listener writes them).
 */
export class SseParser {
  #event = '';
  #data: Uint8Array | undefined;

  /** The event a line completes (the blank line after it), if any. */
  line(line: Uint8Array, service: string): SseEvent | undefined {
    if (line.byteLength === 0) {
      const event = this.#event;
      const data = this.#data;
      this.#event = '';
      this.#data = undefined;
      if (data === undefined) return undefined;
      if (event === '' || event === 'message') return { kind: 'message', data };
      if (event === 'error') return { kind: 'error', error: parseError(data, 500, service || 'remote') };
      if (event === 'end') return { kind: 'end', trailers: trailersOf(data) };
      return undefined;
    }
    if (line[0] === 0x3a /* : comment */) return undefined;
    const text = startsWith(line, 'data:') ? undefined : decoder.decode(line);
    if (text === undefined) {
      const value = line.subarray(line[5] === 0x20 ? 6 : 5);
      this.#data = value;
    } else if (text.startsWith('event:')) this.#event = text.slice(6).trim();
    return undefined;
  }
}

function startsWith(line: Uint8Array, prefix: string): boolean {
  if (line.byteLength < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (line[i] !== prefix.charCodeAt(i)) return false;
  return true;
}

function trailersOf(data: Uint8Array): Metadata {
  try {
    const value = JSON.parse(decoder.decode(data)) as unknown;
    if (typeof value === 'object' && value !== null) {
      const out = new Metadata();
      for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out.set(k, v);
      return out;
    }
  } catch {
    // a malformed end event carries no trailers
  }
  return new Metadata();
}

/**
 * A request stream as a fetch body: NDJSON, pulled (highWaterMark 0): the next message is read from the stream only
 * when fetch can send it. Cancelling the body (the request was aborted) cancels the stream.
 */
export function requestBody(stream: MessageStream): ReadableStream<Uint8Array> {
  const it = stream[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const r = await it.next();
        if (r.done) controller.close();
        else controller.enqueue(frame(r.value, false));
      },
      async cancel() {
        await it.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * A streamed reply as a Web ReadableStream (fetch hosts: Workers, Deno, Lambda's Function URL), pulled: the next
 * message is read from the stream only when the host reads the body. SSE closes with its `end`/`error` event; NDJSON
 * has no trailers on the Web, so a stream that ends with an error errors the body (the caller sees the connection
 * cut, never a clean end). `written` resolves once the stream is over (read to its end, or cancelled by the host
 * because the caller went away): a one-shot function waits for it before it stops.
 */
export function responseBody(
  stream: MessageStream,
  sse: boolean,
  service: string,
): { body: ReadableStream<Uint8Array>; written: Promise<void> } {
  const it = stream[Symbol.asyncIterator]();
  let over!: () => void;
  const written = new Promise<void>((resolve) => (over = resolve));
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let error: MicroError | undefined;
        try {
          const r = await it.next();
          if (!r.done) return controller.enqueue(frame(r.value, sse));
          error = (await stream.end).error;
        } catch (err) {
          error = isMicroError(err) ? err : errors.internal(service || 'micro-fn', 'internal server error');
        }
        if (sse) {
          controller.enqueue(encoder.encode(sseEnd((await stream.end).trailers, error)));
          controller.close();
        } else if (error) controller.error(error);
        else controller.close();
        over();
      },
      async cancel() {
        await it.return?.();
        over();
      },
    },
    { highWaterMark: 0 },
  );
  return { body, written };
}
