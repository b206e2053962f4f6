/**
 * A Worker's fetch as one mucp-over-HTTP exchange: the Request read the way the HTTP listener reads one
 * (runtime/plugins/http/route.ts), the reply written as a Response with the same headers and error JSON.
 */
import { HEALTH_ENDPOINT, errors, headers as names, type MicroError, type ServerRequest, type ServerResponse } from '../../runtime/core/index.js';
import { errorHeaderValue, metadataFromRawHeaders, responseHeaders } from '../../runtime/plugins/http/headers.js';
import { isProbe, requestFromMetadata, route, tooLarge } from '../../runtime/plugins/http/route.js';

/** A request ready for the function, or the error to answer instead (405, 404, 400, 413). */
export type ReadRequest = { request: ServerRequest; error?: undefined } | { request: ServerRequest; error: MicroError };

const encoder = new TextEncoder();

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
  const error = route(request.method, path, request.headers.get('content-length') ?? undefined, read, max);
  if (error) return { request: read, error };
  const body = await readBody(request, max);
  if (!body) return { request: read, error: tooLarge(read.service, max) };
  read.body = body;
  return { request: read };
}

/** The body, or undefined the moment it passes `max` bytes (a chunked body has no Content-Length to check). */
async function readBody(request: Request, max: number): Promise<Uint8Array | undefined> {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
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
    return new Response(reply.body as Uint8Array<ArrayBuffer>, { status: reply.status, headers: framing(headers, reply.contentType, request.id, reply.error) });
  } catch (err) {
    const error = errors.internal(request.service || 'micro-fn', `the reply could not be written as HTTP: ${(err as Error).message}`);
    return errorResponse(error, request.id);
  }
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
