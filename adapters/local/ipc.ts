/**
 * Messages between `micro-fn serve` and a single-use function process: one JSON object per line on a pipe at
 * the process's fd 3. A plain pipe rather than Node's IPC channel, whose message machinery costs ~0.2 ms per
 * round trip. Bodies travel as UTF-8 text: the JSON codec's bytes.
 *
 * Streams (runtime/core/stream.ts) ride the same pipe. An invoke with `stream: true` is followed by the request's
 * messages (IpcData, serve to function) and their IpcEnd; a reply with `stream: true` (status 200, empty body, the
 * metadata set before the first message) by the reply's messages (IpcData, function to serve) and their IpcEnd, with
 * the trailers or the error. Each side sends only one stream, so a data line's direction says which one it belongs
 * to. Flow control is a credit window, counted in characters of the messages' JSON text: the reader of a stream grants
 * the writer characters (IpcCredit, STREAM_WINDOW at first, more as its own reader pulls messages), and the writer makes
 * and sends a message only while it has credit left (the message's length is then taken off, so it may overdraw by
 * one message): neither side holds more than STREAM_WINDOW characters plus one message of a stream, however small or
 * large its messages. IpcCancel says the reader stopped: from serve, the caller went
 * (the function cancels its reply stream, so its handler's signal fires); from the function, the handler stopped
 * reading its request (serve stops sending it). See pipe-stream.ts.
 *
 * Store operations ride it too, when serve offers them (IpcStoreCall, IpcStoreReply; pipe-store.ts): any number at
 * any time, each answered by id, so the local store, sync and config cost a function no HTTP round trip.
 */
import type { ErrorJSON } from '../../runtime/core/errors.js';
import type { SpanData } from '../../runtime/core/trace.js';
import type { StreamKind } from '../../runtime/core/stream.js';
import type { StoreEndpoint } from '../../runtime/plugins/local/protocol.js';

/** Sent by the function process once its bundle is loaded: it is warm and waits for one invocation. */
export interface IpcReady {
  type: 'ready';
  name: string;
  version: string;
  endpoints: string[];
  /** The endpoints that stream, and how (the router's registry metadata `stream`). */
  streams?: Record<string, StreamKind>;
  topics: string[];
  /** It takes several messages of a request stream on one line (IpcData's `bodies`); absent in older bundles. */
  batches?: true;
}

/** One RPC request, the process's only one. */
export interface IpcInvoke {
  type: 'invoke';
  id: string;
  endpoint: string;
  contentType: string;
  body: string;
  metadata: Record<string, string>;
  /** The request is a stream (client, bidi): its messages follow as IpcData, then IpcEnd; `body` is empty. */
  stream?: boolean;
}

/** One broker message, the process's only one. */
export interface IpcMessage {
  type: 'message';
  id: string;
  topic: string;
  headers: Record<string, string>;
  body: string;
  attempt: number;
}

export interface IpcReply {
  type: 'reply';
  status: number;
  contentType: string;
  body: string;
  metadata: Record<string, string>;
  error?: ErrorJSON;
  /** The reply is a stream (server, bidi): its messages follow as IpcData, then IpcEnd; `body` is empty. */
  stream?: boolean;
}

/**
 * Messages of a stream, in order: one (`body`, its JSON text) or several made back to back (`bodies`, at most
 * pipe-stream.ts's BATCH characters in all, plus one message). Sent only within the credit its reader granted.
 */
export interface IpcData {
  type: 'data';
  body?: string;
  bodies?: string[];
}

/** The end of a stream: cleanly, with the trailers, or with the error it failed with. */
export interface IpcEnd {
  type: 'end';
  trailers: Record<string, string>;
  error?: ErrorJSON;
}

/** The reader of a stream grants its writer `n` more characters of messages. */
export interface IpcCredit {
  type: 'credit';
  n: number;
}

/** The reader of a stream stopped: its writer ends the stream without an end (serve: the caller went). */
export interface IpcCancel {
  type: 'cancel';
}

/** What either side sends of a stream. */
export type IpcStream = IpcData | IpcEnd | IpcCredit | IpcCancel;

/**
 * Characters of one stream's messages in flight at once: the credit a reader grants first, and about the most it ever
 * holds (plus one message). 1 MiB: 16 messages of 64 KiB, or tens of thousands of small ones, so a stream of small
 * values is not held up by credit round trips. A reader grants more once its reader has pulled half of it.
 */
export const STREAM_WINDOW = 1024 * 1024;

/**
 * The longest line the pipe takes, in characters (UTF-16 code units as read): a function that writes more without a
 * newline is ended (its caller gets a 500), so a broken or hostile process cannot grow serve's memory. So a reply
 * body is at most about 16 MiB through serve (its JSON escapes count); a stream's messages each travel on a line of
 * their own, so a stream has no such limit.
 */
export const MAX_LINE = 16 * 1024 * 1024;

export interface IpcSettled {
  type: 'settled';
  ok: boolean;
  error?: ErrorJSON;
}

/**
 * Sent to a warm process after it is ready, answered with a pong once it has run a health probe through the
 * invocation path: the first message and the first invocation a process handles run code for the first time
 * (~1 ms); better here, while nobody waits, than in front of the invocation.
 */
export interface IpcPing {
  type: 'ping';
}

export interface IpcPong {
  type: 'pong';
}

/**
 * The finished spans of the invocation, as plain data, for serve to export (serve/observe/span-sink.ts): a function
 * process under serve loads nothing of OpenTelemetry. Sent after the reply, before the process exits; serve reads the
 * pipe to its end, so they arrive even from a process that exits at once.
 */
export interface IpcSpans {
  type: 'spans';
  /** The resource's own attributes (`service.name`, OTEL_RESOURCE_ATTRIBUTES), from the function's environment. */
  resource: Record<string, string>;
  spans: SpanData[];
}

/**
 * A store operation of the function's handler, sent on the pipe when serve offers it (STORE_PIPE_ENV): serve runs
 * it on the store it keeps, as its control service's endpoint of that name would (serve/store-control.ts), and
 * answers with the IpcStoreReply of the same `id`. Any number may be in flight; the function sends at most
 * STORE_IN_FLIGHT at once, and serve stops a process that has more than STORE_IN_FLIGHT_LIMIT.
 */
export interface IpcStoreCall {
  type: 'store';
  id: number;
  endpoint: StoreEndpoint;
  request: unknown;
}

/** The answer to an IpcStoreCall: the endpoint's response, or its error. */
export interface IpcStoreReply {
  type: 'store-reply';
  id: number;
  response?: unknown;
  error?: ErrorJSON;
}

/** Store operations a function process has in flight on its pipe at most; later ones wait in the process. */
export const STORE_IN_FLIGHT = 64;

/** Past this many in flight, a process broke the protocol (it wrote to its pipe itself): serve stops it. */
export const STORE_IN_FLIGHT_LIMIT = 4 * STORE_IN_FLIGHT;

export type ToFunction = IpcInvoke | IpcMessage;
export type FromFunction = IpcReady | IpcPong | IpcReply | IpcSettled | IpcSpans | IpcStream | IpcStoreCall;

/** Set in a function process's environment by the spawner: start serving over the pipe at fd 3. */
export const IPC_ENV = 'MICRO_FN_IPC';

/**
 * Set by a serve that exports spans itself, to what it exports to (`spanSinkKey`, runtime/plugins/otel/settings.ts):
 * a function process whose own OTEL_* settings say the same sends its spans over the pipe (IpcSpans) instead of
 * loading an exporter. A function deployed with an endpoint of its own exports in-process, as `micro-fn run` does.
 */
export const SPANS_ENV = 'MICRO_FN_SPANS';

/** The file descriptor of the pipe in the function process. */
export const IPC_FD = 3;

/** A message as a line: JSON escapes every line break inside strings, so a newline ends a message. */
export function encodeMessage(message: ToFunction | FromFunction | IpcPing | IpcStream | IpcStoreReply): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * Calls `onMessage` with each message of `stream`, however its chunks split them (an 8 MiB reply included). A line
 * longer than `maxLine` characters is not kept: `onTooLong` is called once, and nothing more is read. `onMessage`
 * returning `'yield'` lets the event loop run before the rest of the chunk is read (the stream paused meanwhile, so
 * the order stays): serve hands a reply on to its caller before it reads the thousands of stream messages that may
 * have come with it.
 */
export function readMessages<T>(
  stream: NodeJS.ReadableStream,
  onMessage: (message: T) => unknown,
  onTooLong: (length: number) => void = () => {},
  maxLine = MAX_LINE,
): void {
  let parts: string[] = [];
  let held = 0;
  /** The rest of a chunk waits for the next turn: the stream stays paused until it has been read. */
  let deferred = false;
  let stopped = false;
  stream.setEncoding('utf8');
  const onData = (chunk: string) => {
    if (stopped) return;
    let start = 0;
    for (let end = chunk.indexOf('\n'); end >= 0; end = chunk.indexOf('\n', start)) {
      if (held + end - start > maxLine) return tooLong(held + end - start);
      parts.push(chunk.slice(start, end));
      const line = parts.length === 1 ? parts[0]! : parts.join('');
      parts = [];
      held = 0;
      start = end + 1;
      if (line) {
        // A function's code can write to the pipe too: a line that is not JSON is skipped, never thrown in serve.
        let message: T;
        try {
          message = JSON.parse(line) as T;
        } catch {
          continue;
        }
        if (typeof message === 'object' && message !== null && onMessage(message) === 'yield' && start < chunk.length) {
          const rest = chunk.slice(start);
          deferred = true;
          stream.pause();
          setImmediate(() => {
            deferred = false;
            onData(rest);
            // Reading the rest may have yielded again: the stream resumes only once no rest waits.
            if (!deferred) stream.resume();
          });
          return;
        }
      }
    }
    if (start < chunk.length) {
      held += chunk.length - start;
      if (held > maxLine) return tooLong(held);
      parts.push(chunk.slice(start));
    }
  };
  const tooLong = (length: number) => {
    stopped = true;
    parts = [];
    held = 0;
    stream.removeListener('data', onData);
    stream.resume(); // what still comes is dropped as it comes
    onTooLong(length);
  };
  stream.on('data', onData);
}
