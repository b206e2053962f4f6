/**
 * A reply read from InvokeWithResponseStream: the event stream's PayloadChunks carry the NDJSON lines a streamified
 * micro-fn function writes (adapters/lambda/stream.ts): `{"metadata"}`, `{"body"}` per message, then `{"trailers"}` or
 * `{"error","trailers"}`; a plain endpoint's reply is one line, `{"body","metadata"}` or `{"error","metadata"}`. The
 * last event, InvokeComplete, says whether the function failed (ErrorCode), which ends a stream that had no end line
 * (a crash, Lambda's timeout) with an error. Pulled: the next event is read only when the reader asks for a message.
 */
import type { InvokeWithResponseStreamResponseEvent } from '@aws-sdk/client-lambda';
import {
  Metadata,
  MicroError,
  errors,
  isMicroError,
  jsonCodec,
  parseError,
  type MessageStream,
  type StreamEnd,
  type TransportResponse,
} from '../../core/index.js';

/** Longest line read: Lambda's largest buffered payload. A longer one ends the stream with an error. */
export const MAX_LINE_BYTES = 6_291_556;

type Line = Record<string, unknown>;

const decoder = new TextDecoder();

/** The lines of an event stream, and its InvokeComplete once read. */
class Lines {
  readonly #events: AsyncIterator<InvokeWithResponseStreamResponseEvent>;
  readonly #id: string;
  #partial = '';
  #ready: string[] = [];
  complete: { ErrorCode?: string; ErrorDetails?: string } | undefined;

  constructor(events: AsyncIterable<InvokeWithResponseStreamResponseEvent>, id: string) {
    this.#events = events[Symbol.asyncIterator]();
    this.#id = id;
  }

  /** The next line, parsed; undefined at the end of the stream. Throws a MicroError for what is not a line. */
  async next(): Promise<Line | undefined> {
    while (this.#ready.length === 0) {
      const event = await this.#events.next();
      if (event.done) {
        const rest = this.#partial;
        this.#partial = '';
        if (!rest.trim()) return undefined;
        this.#ready.push(rest);
        break;
      }
      if (event.value.InvokeComplete) this.complete = event.value.InvokeComplete;
      const bytes = event.value.PayloadChunk?.Payload;
      if (!bytes) continue;
      this.#partial += decoder.decode(bytes, { stream: true });
      const lines = this.#partial.split('\n');
      this.#partial = lines.pop()!;
      if (this.#partial.length > MAX_LINE_BYTES)
        throw errors.internal(this.#id, `a line of the stream is longer than ${MAX_LINE_BYTES} bytes`);
      this.#ready.push(...lines.filter((l) => l.trim() !== ''));
    }
    const text = this.#ready.shift()!;
    try {
      const value: unknown = JSON.parse(text);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Line;
    } catch {
      // said below
    }
    throw errors.internal(this.#id, `${this.#id} streamed something other than a micro-fn reply line`);
  }

  /** Stops reading (the caller's reader left early). */
  async close(): Promise<void> {
    await this.#events.return?.();
  }
}

/**
 * The TransportResponse of an InvokeWithResponseStream: a plain reply, an error reply, or a stream whose messages are
 * read as the caller iterates them. `cancel` aborts the invocation's HTTP request (the function runs on, as on
 * Lambda); `functionError` turns InvokeComplete's error into a MicroError.
 */
export async function streamedReply(
  events: AsyncIterable<InvokeWithResponseStreamResponseEvent>,
  id: string,
  cancel: () => void,
  functionError: (code: string, details: string | undefined) => MicroError,
): Promise<TransportResponse> {
  const lines = new Lines(events, id);
  const failed = () =>
    lines.complete?.ErrorCode ? functionError(lines.complete.ErrorCode, lines.complete.ErrorDetails) : undefined;
  let first: Line | undefined;
  try {
    first = await lines.next();
  } catch (err) {
    cancel();
    throw cut(err, id);
  }
  const metadata = new Metadata(strings(first?.metadata));
  if (!first) throw failed() ?? errors.internal(id, `${id} ended its reply without a line`);
  if ('error' in first) return errorReply(parseError(first.error, 500, id), metadata);
  if ('body' in first) return { contentType: jsonCodec.contentType, body: jsonCodec.encode(first.body), metadata };
  let settle: (end: StreamEnd) => void = () => {};
  const end = new Promise<StreamEnd>((resolve) => (settle = resolve));
  let done = false;
  const finish = (result: StreamEnd) => {
    done = true;
    settle(result);
    if (result.error) throw result.error;
  };
  const stream: MessageStream = {
    end,
    [Symbol.asyncIterator]: () => ({
      async next(): Promise<IteratorResult<Uint8Array>> {
        if (done) return { done: true, value: undefined };
        let line: Line | undefined;
        try {
          line = await lines.next();
        } catch (err) {
          cancel();
          finish({ trailers: new Metadata(), error: cut(err, id) });
        }
        if (!line) {
          finish({
            trailers: new Metadata(),
            error: failed() ?? errors.internal(id, `${id} ended its stream without its end line`),
          });
          return { done: true, value: undefined };
        }
        if ('body' in line) return { done: false, value: jsonCodec.encode(line.body) };
        const trailers = new Metadata(strings(line.trailers));
        finish({ trailers, ...('error' in line ? { error: parseError(line.error, 500, id) } : {}) });
        return { done: true, value: undefined };
      },
      async return(): Promise<IteratorResult<Uint8Array>> {
        if (!done) {
          done = true;
          cancel();
          void lines.close().catch(() => {});
          settle({ trailers: new Metadata(), error: errors.internal(id, 'the stream was cancelled by its reader') });
        }
        return { done: true, value: undefined };
      },
    }),
  };
  return { contentType: jsonCodec.contentType, body: new Uint8Array(0), metadata, stream };
}

/** A failure while reading: a MicroError as it is; a connection lost mid-stream as a 502, never sent again (it ran). */
function cut(err: unknown, id: string): MicroError {
  if (isMicroError(err)) return err;
  return new MicroError(id, 502, `the stream was cut: ${(err as Error)?.message ?? String(err)}`, {
    retryable: false,
    cause: err,
  });
}

function errorReply(error: MicroError, metadata: Metadata): TransportResponse {
  return { contentType: jsonCodec.contentType, body: jsonCodec.encode(error.toJSON()), metadata, error };
}

function strings(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
