/**
 * Messages between `micro-fn serve` and a single-use function process: one JSON object per line on a pipe at
 * the process's fd 3. A plain pipe rather than Node's IPC channel, whose message machinery costs ~0.2 ms per
 * round trip. Bodies travel as UTF-8 text: the JSON codec's bytes.
 */
import type { ErrorJSON } from '../../runtime/core/errors.js';
import type { SpanData } from '../../runtime/core/trace.js';

/** Sent by the function process once its bundle is loaded: it is warm and waits for one invocation. */
export interface IpcReady {
  type: 'ready';
  name: string;
  version: string;
  endpoints: string[];
  topics: string[];
}

/** One RPC request, the process's only one. */
export interface IpcInvoke {
  type: 'invoke';
  id: string;
  endpoint: string;
  contentType: string;
  body: string;
  metadata: Record<string, string>;
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
}

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

export type ToFunction = IpcInvoke | IpcMessage;
export type FromFunction = IpcReady | IpcPong | IpcReply | IpcSettled | IpcSpans;

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
export function encodeMessage(message: ToFunction | FromFunction | IpcPing): string {
  return `${JSON.stringify(message)}\n`;
}

/** Calls `onMessage` with each message of `stream`, however its chunks split them (an 8 MiB reply included). */
export function readMessages<T>(stream: NodeJS.ReadableStream, onMessage: (message: T) => void): void {
  let parts: string[] = [];
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end >= 0; end = chunk.indexOf('\n', start)) {
      parts.push(chunk.slice(start, end));
      const line = parts.length === 1 ? parts[0]! : parts.join('');
      parts = [];
      start = end + 1;
      if (line) {
        // A function's code can write to the pipe too: a line that is not JSON is skipped, never thrown in serve.
        let message: T;
        try {
          message = JSON.parse(line) as T;
        } catch {
          continue;
        }
        if (typeof message === 'object' && message !== null) onMessage(message);
      }
    }
    if (start < chunk.length) parts.push(chunk.slice(start));
  });
}
