/**
 * The HTTP client half: one mucp request per `fetch`. Web-standard APIs only (no `node:` import), so the same
 * code calls out of Node, Lambda and Cloudflare Workers.
 */
import {
  MicroError,
  connectFailure,
  errors,
  headers as names,
  parseError,
  type CallOptions,
  type NodeRecord,
  type TransportRequest,
  type TransportResponse,
} from '../../core/index.js';
import { metadataFromHeaders, requestHeaders } from './headers.js';
import type {} from '../../core/build-constants.js';
import { Deadlines } from '../../core/deadlines.js';
import { EVENT_STREAM, NDJSON, requestBody } from './framing.js';
import { ResponseStream, streamCut } from './response-stream.js';
import { asText } from './text-body.js';
import { readAll } from './read-all.js';

/** Stream replies and request streams; a bundle built without streams carries neither (core/build-constants.ts). */
const streams = globalThis.__MICRO_FN_NO_STREAMS__ ? undefined : { ResponseStream, streamCut, requestBody };

export interface HttpClientOptions {
  /**
   * The fetch to send with; default the global one. Workers: pass a service binding's fetch bound to it
   * (`env.API.fetch.bind(env.API)`): an unbound platform fetch throws "Illegal invocation".
   */
  fetch?: typeof fetch;
}

const decoder = new TextDecoder();
const ignore = (): void => {};

/**
 * Redirects are never followed: that would send the call again, elsewhere, and a handler must not run twice. 'error'
 * where the platform has it (Node, Deno): with no window it also spares Node's fetch a clone of every request and a
 * tee of its body, a third of a call's cost. Workers take only 'follow' and 'manual': there a 3xx is a remote error.
 */
const NO_REDIRECT: Pick<RequestInit, 'redirect' | 'window'> =
  (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === 'Cloudflare-Workers'
    ? { redirect: 'manual' }
    : { redirect: 'error', window: null };

/**
 * Sends a TransportRequest as `POST <address>/` with the mucp headers and reads the reply.
 *
 * - A reply with a `Micro-Error` header or a non-2xx status resolves with `error` set (from the body's error
 *   JSON, else the header's; anything else becomes a generic remote error with that status).
 * - A connection that was never made rejects with a retryable 503 (the original error as `cause`), marked
 *   `unreachable` when it was refused or its host does not exist.
 * - A connection lost once the request may have been sent (a reset, a close before the whole reply) rejects with a
 *   503 that is NOT retryable: the handler may have run.
 * - An aborted signal or a passed deadline rejects with a 408 that is not retryable.
 *
 * fetch gets a signal only when something may cancel the call before its deadline: the caller's signal, or a
 * stream (a reader that stops early). Node's fetch spends some 20 µs on each request that has one (a WeakRef, a
 * finalizer, listeners), a fifth of a call, so a call bounded by its deadline alone races it instead: at the
 * deadline the call rejects and its reply, should it still come, is thrown away (a micro-fn server answers 408 at
 * that same deadline, which `Micro-Timeout` told it, so the connection is soon free). A request whose reply had
 * not begun by then keeps its connection until the reply comes; while one does, the client's later calls go with
 * a signal again, so a server that never answers holds no more connections than were in flight when it stopped.
 */
export class HttpClient {
  readonly #fetch: typeof fetch;
  /** Calls past their deadline whose fetch has not settled yet (see the class comment). */
  #abandoned = 0;
  /** The calls' deadlines, on one timer. */
  readonly #deadlines = new Deadlines();

  constructor(options: HttpClientOptions = {}) {
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  async call(node: NodeRecord, request: TransportRequest, options: CallOptions = {}): Promise<TransportResponse> {
    const id = request.service || 'micro-fn';
    const { signal, deadline } = options;
    if (signal?.aborted) throw aborted(id, signal, undefined);
    const headers = requestHeaders(request);
    const ms = deadline === undefined ? Infinity : deadline - Date.now();
    if (ms <= 0) throw aborted(id, signal, undefined);

    // A signal of our own per call, linked to the caller's: Node's fetch leaves a listener on the signal it is
    // given until garbage collection, so one long-lived caller signal would pile them up (MaxListenersExceeded).
    let controller: AbortController | undefined;
    let onAbort: (() => void) | undefined;
    if (signal || request.stream || (this.#abandoned > 0 && ms !== Infinity)) {
      const c = (controller = new AbortController());
      if (signal) {
        onAbort = () => c.abort();
        signal.addEventListener('abort', onAbort, { once: true });
      }
    }
    // Without a signal: what the deadline ends (the wait for fetch, the body's reader, a reply stream).
    let expired = false;
    let pending: Promise<Response> | undefined;
    let interrupt: ((err: MicroError) => void) | undefined;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let stream: ResponseStream | undefined;
    const watched =
      deadline === undefined
        ? undefined
        : this.#deadlines.add(deadline, () => {
            expired = true;
            if (controller) return controller.abort();
            const error = aborted(id, undefined, undefined);
            if (stream) return stream.fail(error);
            if (reader) return void reader.cancel().catch(ignore);
            interrupt?.(error);
            if (!pending) return;
            this.#abandoned++;
            pending.then((res) => res.body?.cancel().catch(ignore), ignore).finally(() => this.#abandoned--);
          });
    const release = () => {
      this.#deadlines.delete(watched);
      if (onAbort) signal!.removeEventListener('abort', onAbort);
    };
    const fetchSignal = controller?.signal;
    const url = node.address.endsWith('/') ? node.address : `${node.address}/`;
    const send = this.#fetch; // called unbound: a platform fetch rejects any other `this`
    // The micro-fn client reads a streamed reply as Server-Sent Events: their end and error events are unambiguous.
    headers.accept = streams ? `application/json, ${EVENT_STREAM}` : 'application/json';
    let streaming = false;

    try {
      let init: RequestInit & { duplex?: 'half' };
      if (request.stream) {
        headers[names.contentType] = NDJSON;
        init = {
          method: 'POST',
          headers,
          body: streams!.requestBody(request.stream),
          duplex: 'half',
          signal: fetchSignal,
          ...NO_REDIRECT,
        };
      } else {
        // The DOM typings want an ArrayBuffer-backed view; every Uint8Array a codec produces is one.
        const body = asText(request.contentType, request.body as Uint8Array<ArrayBuffer>);
        init = { method: 'POST', headers, body, signal: fetchSignal, ...NO_REDIRECT };
      }
      let res: Response;
      if (controller) res = await send(url, init);
      else {
        const sent = (pending = send(url, init));
        res = await new Promise<Response>((resolve, reject) => {
          interrupt = reject;
          sent.then(resolve, reject);
        });
        pending = interrupt = undefined;
      }
      const resHeaders = res.headers;
      const typeHeader = resHeaders.get(names.contentType);
      const type = typeHeader ?? '';
      if (streams && res.body && (type.startsWith(EVENT_STREAM) || type.startsWith(NDJSON))) {
        // The deadline, the caller's signal and the request stay armed until the stream ends: they bound all of it.
        streaming = true;
        stream = new streams.ResponseStream(
          res.body,
          type.startsWith(EVENT_STREAM),
          id,
          controller,
          (err) =>
            fetchSignal?.aborted || expired ? aborted(id, signal, err) : streams.streamCut(id, node.address, err),
          release,
        );
        if (fetchSignal?.aborted || expired) stream.fail(aborted(id, signal, undefined));
        return {
          contentType: 'application/json',
          body: new Uint8Array(0),
          metadata: metadataFromHeaders(resHeaders),
          stream,
        };
      }
      const body = controller
        ? new Uint8Array(await res.arrayBuffer())
        : (await readAll((reader = res.body?.getReader())))!; // no bound: never undefined
      if (expired) throw aborted(id, signal, undefined);
      const response: TransportResponse = {
        contentType: typeHeader ?? 'application/json',
        body,
        metadata: metadataFromHeaders(resHeaders),
      };
      const errorHeader = resHeaders.get(names.error);
      if (errorHeader !== null || res.status < 200 || res.status > 299)
        response.error = remoteError(body, errorHeader, res.status, id);
      return response;
    } catch (err) {
      if (fetchSignal?.aborted || expired) throw aborted(id, signal, err);
      const failure = connectFailure(err);
      if (failure)
        throw errors.unavailable(id, `cannot reach ${node.address}: ${reason(err)}`, {
          unreachable: failure === 'unreachable',
          cause: err,
        });
      throw errors.unavailable(
        id,
        `the call to ${node.address} failed (${reason(err)}) after its request may have arrived; not sent again, so its handler cannot run twice`,
        { retryable: false, cause: err },
      );
    } finally {
      if (!streaming) release();
    }
  }
}

function aborted(id: string, signal: AbortSignal | undefined, cause: unknown): MicroError {
  const detail = signal?.aborted ? 'request aborted' : 'deadline exceeded';
  return errors.timeout(id, detail, { retryable: false, cause });
}

/** The most telling part of a fetch failure: undici hides the socket error (`ECONNREFUSED`) in `cause`. */
function reason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** The body's error JSON when it is one, else the `Micro-Error` header's, else a generic error of `status`. */
function remoteError(body: Uint8Array, header: string | null, status: number, id: string): MicroError {
  const fallback = status >= 400 && status <= 599 ? status : 500;
  let value: unknown;
  if (body.byteLength > 0 && body[0] === 0x7b /* { */) {
    try {
      value = JSON.parse(decoder.decode(body));
    } catch {
      value = undefined;
    }
  }
  if (typeof (value as { code?: unknown } | undefined)?.code !== 'number') value = header ?? body;
  return parseError(value, fallback, id);
}
