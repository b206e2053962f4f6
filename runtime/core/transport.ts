import { Metadata } from './metadata.js';
import type { MicroError } from './errors.js';
import type { NodeRecord } from './registry.js';
import type { MessageStream } from './stream.js';

/** A request as it travels: already encoded. */
export interface TransportRequest {
  /** Request id (`Micro-Id`). */
  id: string;
  service: string;
  endpoint: string;
  contentType: string;
  body: Uint8Array;
  metadata: Metadata;
  /** A client or bidi stream's messages (see stream.ts); `body` is then empty. */
  stream?: MessageStream;
}

/** A reply as it travels: `error` set means `body` is the error JSON. */
export interface TransportResponse {
  contentType: string;
  body: Uint8Array;
  metadata: Metadata;
  error?: MicroError;
  /**
   * A server or bidi stream's messages (see stream.ts); `body` is then empty and `metadata` is what the handler set
   * before its first message. An error before the first message is a plain error reply, never a stream.
   */
  stream?: MessageStream;
}

export interface CallOptions {
  /** Epoch milliseconds after which the caller gives up. */
  deadline?: number;
  signal?: AbortSignal;
}

/** A request on the server side; `probe` marks health checks, which never use up a function's one shot. */
export interface ServerRequest extends TransportRequest {
  /**
   * A health check. `'stream'`: one whose answer is a server stream of one item, so it runs the path of a streamed
   * reply (a warm process under serve compiles that path so before its invocation; no caller can send one).
   */
  probe?: boolean | 'stream';
  /**
   * Whether its caller still waits, where the listener can tell (HTTP: the connection). A host that queues requests
   * (`micro-fn serve`) drops one whose caller has gone before it starts.
   */
  caller?: Caller;
}

/** The caller of a request, as its listener sees it. */
export interface Caller {
  /** True once the caller has gone: its connection closed before the reply was written. */
  readonly gone: boolean;
  /** Calls `listener` once when the caller goes (at once if it has gone); the function returned removes it. */
  onGone(listener: () => void): () => void;
}

/**
 * A Caller that a listener turns gone: `go()` when it sees the caller leave. A transport's caller object holds one
 * and hands `gone` and `onGone` to it; the listeners are made only when a host asks (most requests never do).
 */
export class CallerSignal implements Caller {
  #gone = false;
  #listeners: Set<() => void> | undefined;

  get gone(): boolean {
    return this.#gone;
  }

  onGone(listener: () => void): () => void {
    if (this.#gone) {
      listener();
      return () => {};
    }
    (this.#listeners ??= new Set()).add(listener);
    return () => void this.#listeners?.delete(listener);
  }

  /**
   * The caller has gone: every listener is called, once (`tell` false: none is, for a caller that leaves after
   * everything was answered, which cancels nothing). False when it had gone already.
   */
  go(tell = true): boolean {
    if (this.#gone) return false;
    this.#gone = true;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (tell && listeners) for (const listener of listeners) listener();
    return true;
  }
}

/** A reply on the server side. `status` is 200 or the error's code. */
export interface ServerResponse extends TransportResponse {
  status: number;
}

const encoder = new TextEncoder();

/** `error` as a reply: its status, the error JSON as the body. */
export function errorReply(error: MicroError, metadata = new Metadata()): ServerResponse {
  return {
    status: error.code,
    contentType: 'application/json',
    body: encoder.encode(JSON.stringify(error)),
    metadata,
    error,
  };
}

/**
 * Sends the reply back to the caller and resolves once it has been handed over completely (flushed to the
 * socket, written to IPC, returned to the platform). A one-shot function waits for it before it deregisters.
 */
export type Reply = (response: ServerResponse) => Promise<void>;

/** What a listener calls for each request it receives. */
export type RequestHandler = (request: ServerRequest, reply: Reply) => Promise<void>;

/** The server side of a transport: accepts requests until closed. */
export interface Listener {
  /** The node address to register, e.g. `http://127.0.0.1:4001`. */
  readonly address: string;
  /** Stops accepting; requests already received are answered first. */
  close(): Promise<void>;
}

export interface ListenOptions {
  /** Where to listen, in the transport's own form (`127.0.0.1:0` for HTTP). */
  address?: string;
  /**
   * The service behind the listener, for transports that announce it (NATS lists it through its Services
   * API); HTTP ignores it.
   */
  service?: { name: string; version: string; endpoints: readonly string[]; metadata?: Record<string, string> };
}

/**
 * Carries requests to a node. The client picks the transport by the scheme of the node's address.
 */
export interface Transport {
  /** URL schemes this transport reaches, without the colon: `['http', 'https']`. */
  readonly schemes: readonly string[];
  call(node: NodeRecord, request: TransportRequest, options?: CallOptions): Promise<TransportResponse>;
  /** Absent where the platform cannot accept connections (Workers, Lambda). */
  listen?(handler: RequestHandler, options?: ListenOptions): Promise<Listener>;
  close?(): Promise<void>;
}

/** The scheme of a node address: `http://x` -> `http`. */
export function schemeOf(address: string): string {
  const i = address.indexOf('://');
  return i > 0 ? address.slice(0, i).toLowerCase() : '';
}

/** Socket error codes of a connection never made because nothing is there: not one byte of the request left. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND']);
/** ... never made for a reason that may pass: a DNS hiccup, a connect timeout, no local port free. */
const UNSENT_CODES = new Set(['EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EADDRNOTAVAIL']);

/**
 * What a failed call says about its request, for a transport to tell its client whether it may send it again:
 * `'unreachable'` (the connection was refused, or its host does not exist: nothing was sent and nothing is there),
 * `'unsent'` (the connection was never made, for a reason that may pass), or `undefined`: the request may have been
 * sent (a reset, a connection closed mid-reply), so sending it again could run a handler twice. Reads `code` on
 * the error and on its `cause` (fetch hides the socket error there), and every error of an AggregateError (one per
 * address tried).
 */
export function connectFailure(err: unknown): 'unreachable' | 'unsent' | undefined {
  const codes: unknown[] = [];
  const collect = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || depth > 3) return;
    const { code, cause, errors } = e as { code?: unknown; cause?: unknown; errors?: unknown };
    if (Array.isArray(errors) && errors.length > 0) return errors.forEach((x) => collect(x, depth + 1));
    if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || UNSENT_CODES.has(code)))
      return void codes.push(code);
    if (cause !== undefined) return collect(cause, depth + 1);
    codes.push(code);
  };
  collect(err, 0);
  if (codes.length === 0) return undefined;
  if (codes.every((c) => UNREACHABLE_CODES.has(c as string))) return 'unreachable';
  if (codes.every((c) => UNREACHABLE_CODES.has(c as string) || UNSENT_CODES.has(c as string))) return 'unsent';
  return undefined;
}
