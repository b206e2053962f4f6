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
import { EVENT_STREAM, NDJSON, STATUS_TRAILER, frame, sseEnd } from './framing.js';
import { errorHeaderValue } from './headers.js';

const ignore = (): void => {};

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
  // Headers out now: the caller learns the stream has begun (and its metadata) before the first message is sent.
  res.flushHeaders();
  let error: MicroError | undefined;
  let end: StreamEnd | undefined;
  try {
    for (;;) {
      const r = await it.next();
      if (closed) return;
      if (r.done) break;
      if (!res.write(frame(r.value, sse))) {
        let drained: (() => void) | undefined;
        await new Promise<void>((resolve) => {
          wake = drained = resolve;
          res.once('drain', resolve);
        });
        wake = undefined;
        res.off('drain', drained!);
        if (closed) return;
      }
    }
    end = await stream.end;
    error = end.error;
  } catch (err) {
    error = toMicroError(err, service);
  }
  if (closed) return;
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
