/**
 * Writes a streamed reply (server, bidi) on a node:http response as it is pulled, in the framing of framing.ts.
 * Backpressure: the next message is read from the stream only once the socket took the last one (`write` returned
 * true, or 'drain' came), so what waits here is one message plus Node's and the kernel's socket buffers. A
 * connection that closes first cancels the stream (the handler's `ctx.signal` fires).
 */
import type { ServerResponse as NodeResponse } from 'node:http';
import {
  Metadata,
  headers as names,
  toMicroError,
  type MessageStream,
  type MicroError,
  type StreamEnd,
} from '../../core/index.js';
import { EVENT_STREAM, NDJSON, STATUS_TRAILER, sseEnd } from './framing.js';
import { errorHeaderValue } from './headers.js';

const ignore = (): void => {};

/** The most a stream writer gathers before it writes: 16 KiB, the socket's own high-water mark (then it waits for the socket, as for every write). */
export const BATCH_BYTES = 16 * 1024;

const NEWLINE = new Uint8Array([0x0a]);
const SSE_DATA = new TextEncoder().encode('data: ');
const SSE_TAIL = new TextEncoder().encode('\n\n');

/** Resolves after the event loop's next check phase: ticks, I/O callbacks and Node's uncork have run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Framed messages waiting for one write. */
class Batch {
  readonly #sse: boolean;
  #parts: Uint8Array[] = [];
  size = 0;

  constructor(sse: boolean) {
    this.#sse = sse;
  }

  add(message: Uint8Array): void {
    if (this.#sse) {
      this.#parts.push(SSE_DATA, message, SSE_TAIL);
      this.size += message.byteLength + 8;
    } else {
      this.#parts.push(message, NEWLINE);
      this.size += message.byteLength + 1;
    }
  }

  take(): Buffer {
    const out = Buffer.concat(this.#parts, this.size);
    this.#parts = [];
    this.size = 0;
    return out;
  }
}

export function writeStream(
  res: NodeResponse,
  stream: MessageStream,
  head: Record<string, string | number>,
  sse: boolean,
  service: string,
): void {
  void pump(res, stream, head, sse, service).catch(ignore);
}

async function pump(
  res: NodeResponse,
  stream: MessageStream,
  head: Record<string, string | number>,
  sse: boolean,
  service: string,
): Promise<void> {
  const it = stream[Symbol.asyncIterator]();
  let closed = false;
  let wake: (() => void) | undefined;
  const onClose = (): void => {
    closed = true;
    wake?.();
    // The caller went away mid-stream: cancel it, so the handler stops.
    if (!res.writableFinished) void Promise.resolve(it.return?.()).catch(ignore);
  };
  res.once('close', onClose);
  head[names.contentType] = sse ? EVENT_STREAM : NDJSON;
  if (sse) head['cache-control'] = 'no-cache';
  else head.trailer = `${STATUS_TRAILER}, ${names.error}`;
  res.writeHead(200, head);
  // No flushHeaders: the dispatcher has the first message in hand already, and it goes out with the headers.
  let error: MicroError | undefined;
  let end: StreamEnd | undefined;
  // Messages a handler yields back to back go out as one chunk: gathered until this turn's microtasks are done (or
  // BATCH_BYTES are in hand), then written at once. A handler that waits between items sends each at once.
  const batch = new Batch(sse);
  let full = false;
  let scheduled = false;
  let first = true;
  const flush = (): void => {
    scheduled = false;
    if (closed || batch.size === 0 || res.writableEnded) return;
    if (!res.write(batch.take())) full = true;
  };
  const drained = async (): Promise<void> => {
    let resolved: (() => void) | undefined;
    await new Promise<void>((resolve) => {
      wake = resolved = resolve;
      res.once('drain', resolve);
    });
    wake = undefined;
    res.off('drain', resolved!);
    full = false;
  };
  try {
    for (;;) {
      // 'drain' may have come already (during a turn): wait only while the response still needs it.
      if (full && res.writableNeedDrain) await drained();
      full = false;
      if (closed) return;
      const r = await it.next();
      if (closed) return;
      if (r.done) break;
      batch.add(r.value);
      if (batch.size >= BATCH_BYTES || first) {
        // Node corks the socket on a write until the next tick, and a handler that yields back to back never lets
        // the microtask queue run dry: give the event loop a turn, so what was written goes out now.
        flush();
        await turn();
        // After the first message, a second turn: the first resumes in this very check phase, before the loop polls
        // again, so a reader on this event loop (a client in the same process) would get the first message only after
        // the next BATCH_BYTES were made (~1.4 ms of small messages): measured, first item 1.27-1.64× a bare
        // node:http server's in one process, 0.63-0.90× with it.
        if (first) await turn();
        first = false;
      } else if (!scheduled) {
        scheduled = true;
        process.nextTick(flush);
      }
    }
    flush();
    end = await stream.end;
    error = end.error;
  } catch (err) {
    error = toMicroError(err, service);
  }
  if (closed) return;
  // What was gathered before an error goes out before the error does.
  flush();
  const trailers = end?.trailers;
  if (sse) {
    res.end(sseEnd(trailers ?? new Metadata(), error));
    return;
  }
  const out: Record<string, string> = {};
  if (trailers) for (const [k, v] of trailers) out[k] = v;
  out[STATUS_TRAILER] = String(error ? error.code : 200);
  if (error) out[names.error] = errorHeaderValue(error);
  try {
    res.addTrailers(out);
  } catch {
    // A trailer Node refuses (a handler's value with a line break): the status still goes out.
    res.addTrailers({ [STATUS_TRAILER]: out[STATUS_TRAILER]!, ...(error ? { [names.error]: out[names.error]! } : {}) });
  }
  res.end();
}
