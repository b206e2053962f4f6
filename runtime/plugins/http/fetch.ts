/**
 * mucp over HTTP as one Web-standard handler, `Request → Response`, for every host that speaks fetch: Cloudflare
 * Workers, Deno, and Lambda's Function URL / HTTP API (whose event the Lambda adapter turns into a Request and
 * back). The rules for `/health`, routes, body limits and content types are route.ts's, which the node:http
 * listener follows too. No `node:` import.
 */
import {
  HEALTH_ENDPOINT,
  Router,
  errors,
  headers as names,
  limitTimeout,
  type MicroError,
  type Runner,
  type ServerRequest,
  type ServerResponse,
} from '../../core/index.js';
import { errorHeaderValue, metadataFromRawHeaders, responseHeaders } from './headers.js';
import { LINGER_BYTES, readAll } from './read-all.js';
import { DEFAULT_MAX_BODY_SIZE, bodyFromQuery, isProbe, requestFromMetadata, route, tooLarge } from './route.js';
import type {} from '../../core/build-constants.js';
import { EVENT_STREAM, NDJSON, acceptsEventStream, isNdjson, responseBody } from './framing.js';
import { BodyRequestStream, afterRequest, afterRequestBody } from './fetch-stream.js';
import { isWebSocketRequest, serveWebSocket, type UpgradeWebSocket } from './fetch-socket.js';

/**
 * Streamed replies, request streams and WebSocket; a bundle built without streams carries none of it
 * (core/build-constants.ts): an NDJSON body is then an unsupported content type, an upgrade an ordinary request.
 */
const streaming = globalThis.__MICRO_FN_NO_STREAMS__
  ? undefined
  : { responseBody, BodyRequestStream, afterRequest, afterRequestBody, isWebSocketRequest, serveWebSocket };

/** The request's stream when it is a fetch body's (what the handler leaves of it is thrown away, within bounds). */
const bodyStream = (req: ServerRequest) =>
  !globalThis.__MICRO_FN_NO_STREAMS__ && streaming && req.stream instanceof streaming.BodyRequestStream
    ? req.stream
    : undefined;

export interface FetchHandlerOptions {
  /** Largest request body in bytes; a larger one is answered 413. Default 1 MiB, as the listener's. */
  maxBodySize?: number;
}

/** What the host tells the handler about this one request. */
export interface FetchContext {
  /**
   * Keeps the event alive for work after the Response (a Worker's `ctx.waitUntil`): the Response goes back as
   * soon as the reply exists, and stopping the function finishes in it. Without it, the Response is returned once
   * the function has stopped (Lambda freezes whatever runs after the handler returns).
   */
  waitUntil?(promise: Promise<unknown>): void;
  /** Milliseconds the host gives the invocation; a caller's shorter `Micro-Timeout` still wins. */
  remainingMs?: number;
  /**
   * Takes a WebSocket (a Worker's `WebSocketPair`, `Deno.upgradeWebSocket`), where the host can: a stream endpoint
   * is then also served over WebSocket (fetch-socket.ts). Without it, an upgrade request is an ordinary one.
   */
  upgrade?: UpgradeWebSocket;
}

export type FetchHandler = (request: Request, context?: FetchContext) => Promise<Response>;

/** A request ready for the function, or the error to answer instead (405, 404, 400, 413). */
export type ReadRequest = { request: ServerRequest; error?: undefined } | { request: ServerRequest; error: MicroError };

const encoder = new TextEncoder();

/**
 * The fetch handler of `runner`: `POST /` with `Micro-Service`/`Micro-Endpoint` headers or
 * `POST /<service>/<Service.Method>`, one fresh Function per request; `GET /health` is a probe that never uses an
 * invocation up. Errors are go-micro error JSON with their status and `Micro-Error`. Never throws.
 * @example
 * // a Deno module: `deno serve main.ts`
 * const runner = new Runner(helloworld, { env: Deno.env.toObject(), plugins: () => resolvePlugins(env, { platform: 'web' }) });
 * export default { fetch: createFetchHandler(runner) };
 */
export function createFetchHandler(runner: Runner, options: FetchHandlerOptions = {}): FetchHandler {
  const max = options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE;
  let router: Router | undefined;
  return async (request, context = {}) => {
    // The constant, not only `streaming`, at each stream branch: the minifier then drops the branch (build-constants.ts).
    if (!globalThis.__MICRO_FN_NO_STREAMS__ && context.upgrade && streaming?.isWebSocketRequest(request)) {
      router ??= new Router(runner.definition);
      const served = streaming.serveWebSocket(
        { runner, router, maxMessage: max, ...context, upgrade: context.upgrade },
        request,
      );
      return served.error ? errorResponse(served.error, served.id) : served.response;
    }
    const read = await readRequest(request, max);
    if (read.error) return errorResponse(read.error, read.request.id);
    const req = read.request;
    if (context.remainingMs !== undefined) limitTimeout(req.metadata, context.remainingMs);
    let answer!: (response: Response) => void;
    const answered = new Promise<Response>((resolve) => (answer = resolve));
    let responded = false;
    let streamed = false;
    const respond = async (reply: ServerResponse): Promise<void> => {
      if (responded) return;
      responded = true;
      const body = bodyStream(req);
      // A branch, not an early return: what only the dead branch names is dropped with it (build-constants.ts).
      if (globalThis.__MICRO_FN_NO_STREAMS__ || !reply.stream) {
        const response = toResponse(reply, req);
        answer(body ? streaming!.afterRequestBody(response, body) : response);
      } else {
        // A stream is the invocation: the function ends once the host has read it (or the caller went away).
        streamed = true;
        const stream = body ? streaming!.afterRequest(reply.stream, body) : reply.stream;
        const sse = acceptsEventStream(request.headers.get('accept'));
        const { response, written } = toStreamResponse({ ...reply, stream }, req, sse);
        answer(response);
        await written;
      }
    };
    // Answered from inside the invocation, so the Response exists before the function stops; the runner answers
    // a failure outside the handler with a 500 the same way, and the `then` covers a reply never made.
    const run = runner.invoke(req, respond).then(async (reply) => {
      // A request stream the handler left unread (or never got: an error, a refusal) is read no further: what the
      // caller still sends is thrown away, within a bound, while the reply goes out.
      if (req.stream) await req.stream[Symbol.asyncIterator]().return?.();
      await respond(reply);
      await bodyStream(req)?.drained;
    });
    if (context.waitUntil) {
      context.waitUntil(run);
      return answered;
    }
    // A streamed reply is read after the Response is returned: waiting for the function first would never end.
    await Promise.race([run, answered.then(() => streamed && undefined)]);
    if (!streamed) await run;
    return answered;
  };
}

/** Reads `request` (its body up to `max` bytes) as a ServerRequest; `GET /health` becomes a probe. */
export async function readRequest(request: Request, max: number): Promise<ReadRequest> {
  const path = new URL(request.url).pathname;
  const metadata = metadataFromRawHeaders([...request.headers].flat());
  const read = requestFromMetadata(metadata);
  if (isProbe(request.method, path)) {
    read.endpoint = HEALTH_ENDPOINT;
    read.probe = true;
    return { request: read };
  }
  // Without streams, no GET is a call (an EventSource's is) and no body a request stream (build-constants.ts).
  const sse = !globalThis.__MICRO_FN_NO_STREAMS__ && acceptsEventStream(request.headers.get('accept'));
  // A request stream (client, bidi) is one JSON value per line, of any length: only each line is bounded.
  const streamed =
    !globalThis.__MICRO_FN_NO_STREAMS__ &&
    streaming &&
    request.method === 'POST' &&
    isNdjson(request.headers.get('content-type'));
  const length = streamed ? undefined : (request.headers.get('content-length') ?? undefined);
  const error = route(request.method, path, length, read, max, sse);
  if (error) return { request: read, error };
  if (!globalThis.__MICRO_FN_NO_STREAMS__ && streamed) {
    read.contentType = 'application/json';
    read.stream = new streaming.BodyRequestStream(request.body, max, read.service);
  } else if (!globalThis.__MICRO_FN_NO_STREAMS__ && request.method === 'GET') {
    read.body = bodyFromQuery(new URL(request.url).search.slice(1));
  } else {
    const body = await readBody(request, max);
    if (!body) return { request: read, error: tooLarge(read.service, max) };
    read.body = body;
  }
  return { request: read };
}

/**
 * The body, or undefined once it passes `max` bytes (a chunked body has no Content-Length to check): what still comes
 * is read and dropped up to LINGER_BYTES, so the caller finishes sending and reads its 413.
 */
function readBody(request: Request, max: number): Promise<Uint8Array | undefined> {
  return readAll(request.body?.getReader(), max, LINGER_BYTES);
}

/**
 * The reply as a Response: metadata as headers, `Content-Type`, `Micro-Id`, and for an error `Micro-Error`.
 * A reply that cannot be an HTTP response (a metadata value that is no header value, a status out of range)
 * becomes a 500 that says why, as the listener does.
 */
export function toResponse(reply: ServerResponse, request: Pick<ServerRequest, 'id' | 'service'>): Response {
  try {
    const headers = new Headers();
    for (const [key, value] of Object.entries(responseHeaders(reply.metadata))) headers.set(key, String(value));
    return new Response(reply.body as Uint8Array<ArrayBuffer>, {
      status: reply.status,
      headers: framing(headers, reply.contentType, request.id, reply.error),
    });
  } catch (err) {
    const error = errors.internal(
      request.service || 'micro-fn',
      `the reply could not be written as HTTP: ${(err as Error).message}`,
    );
    return errorResponse(error, request.id);
  }
}

/**
 * A streamed reply as a Response whose body is pulled from the stream (framing.ts's `responseBody`): status 200,
 * the metadata set before the first message as headers; `written` resolves once the stream is over.
 */
export function toStreamResponse(
  reply: ServerResponse,
  request: Pick<ServerRequest, 'id' | 'service'>,
  sse: boolean,
): { response: Response; written: Promise<void> } {
  const { body, written } = streaming!.responseBody(reply.stream!, sse, request.service);
  const headers = new Headers();
  try {
    for (const [key, value] of Object.entries(responseHeaders(reply.metadata))) headers.set(key, String(value));
  } catch {
    // A metadata value that is no header value: the stream goes without it rather than not at all.
  }
  if (sse) headers.set('cache-control', 'no-cache');
  return {
    response: new Response(body, {
      status: 200,
      headers: framing(headers, sse ? EVENT_STREAM : NDJSON, request.id, undefined),
    }),
    written,
  };
}

/** An error answered before or instead of the function: error JSON in the body and in `Micro-Error`. */
export function errorResponse(error: MicroError, id: string): Response {
  const headers = framing(new Headers(), 'application/json', id, error);
  if (error.code === 405) headers.set('allow', 'POST');
  return new Response(encoder.encode(JSON.stringify(error)), { status: error.code, headers });
}

function framing(headers: Headers, contentType: string, id: string, error: MicroError | undefined): Headers {
  headers.set(names.contentType, contentType || 'application/octet-stream');
  headers.set(names.id, id);
  if (error) headers.set(names.error, errorHeaderValue(error));
  return headers;
}
