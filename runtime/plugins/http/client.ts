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
import { EVENT_STREAM, NDJSON, requestBody } from './framing.js';
import { ResponseStream, streamCut } from './response-stream.js';

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

/** Called by the deadline timer; a plain function, so no closure per call. */
function expire(controller: AbortController): void {
  controller.abort();
}

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
 */
export class HttpClient {
  readonly #fetch: typeof fetch;

  constructor(options: HttpClientOptions = {}) {
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  async call(node: NodeRecord, request: TransportRequest, options: CallOptions = {}): Promise<TransportResponse> {
    const id = request.service || 'micro-fn';
    const { signal, deadline } = options;
    if (signal?.aborted) throw aborted(id, signal, undefined);
    const headers = requestHeaders(request);

    // A signal of our own per call, linked to the caller's: Node's fetch leaves a listener on the signal it is
    // given until garbage collection, so one long-lived caller signal would pile them up (MaxListenersExceeded).
    let controller: AbortController | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    if (deadline !== undefined || signal) {
      const ms = deadline === undefined ? Infinity : deadline - Date.now();
      if (ms <= 0) throw aborted(id, signal, undefined);
      const c = (controller = new AbortController());
      if (ms !== Infinity) timer = setTimeout(expire, ms, c);
      if (signal) {
        onAbort = () => c.abort();
        signal.addEventListener('abort', onAbort, { once: true });
      }
    }
    // A stream needs a signal of its own: a reader that stops early aborts the request.
    if (request.stream && !controller) controller = new AbortController();
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
        };
      } else {
        // The DOM typings want an ArrayBuffer-backed view; every Uint8Array a codec produces is one.
        init = { method: 'POST', headers, body: request.body as Uint8Array<ArrayBuffer>, signal: fetchSignal };
      }
      const res = await send(url, init);
      const resHeaders = res.headers;
      const type = resHeaders.get(names.contentType) ?? '';
      if (streams && res.body && (type.startsWith(EVENT_STREAM) || type.startsWith(NDJSON))) {
        // The deadline, the caller's signal and the request stay armed until the stream ends: they bound all of it.
        streaming = true;
        const stream = new streams.ResponseStream(
          res.body,
          type.startsWith(EVENT_STREAM),
          id,
          controller,
          (err) => (fetchSignal?.aborted ? aborted(id, signal, err) : streams.streamCut(id, node.address, err)),
          () => {
            if (timer !== undefined) clearTimeout(timer);
            if (onAbort) signal!.removeEventListener('abort', onAbort);
          },
        );
        if (fetchSignal?.aborted) stream.fail(aborted(id, signal, undefined));
        return {
          contentType: 'application/json',
          body: new Uint8Array(0),
          metadata: metadataFromHeaders(resHeaders),
          stream,
        };
      }
      const body = new Uint8Array(await res.arrayBuffer());
      const response: TransportResponse = {
        contentType: resHeaders.get(names.contentType) ?? 'application/json',
        body,
        metadata: metadataFromHeaders(resHeaders),
      };
      const errorHeader = resHeaders.get(names.error);
      if (errorHeader !== null || res.status < 200 || res.status > 299)
        response.error = remoteError(body, errorHeader, res.status, id);
      return response;
    } catch (err) {
      if (fetchSignal?.aborted) throw aborted(id, signal, err);
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
      if (!streaming) {
        if (timer !== undefined) clearTimeout(timer);
        if (onAbort) signal!.removeEventListener('abort', onAbort);
      }
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
