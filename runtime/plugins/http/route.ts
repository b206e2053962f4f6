/**
 * How an incoming mucp-over-HTTP request is read, whatever server received it: node:http (listener.ts) or a
 * Worker's fetch (adapters/cloudflare). No `node:` import.
 */
import { MicroError, errors, headers as names, newId, type Metadata, type ServerRequest } from '../../core/index.js';

/** 1 MiB, go-micro's default too. */
export const DEFAULT_MAX_BODY_SIZE = 1_048_576;

const EMPTY = new Uint8Array(0);

/** A request named by its headers (`Micro-Service`, `Micro-Endpoint`, `Micro-Id`, `Content-Type`), body not yet read. */
export function requestFromMetadata(metadata: Metadata): ServerRequest {
  return {
    id: metadata.get(names.id) || newId(),
    service: metadata.get(names.service) ?? '',
    endpoint: metadata.get(names.endpoint) ?? '',
    contentType: metadata.get(names.contentType) ?? 'application/json',
    body: EMPTY,
    metadata,
  };
}

/** True for a health probe: `GET /health` or `GET /healthz`. It never uses up a one-shot function's invocation. */
export function isProbe(method: string | undefined, path: string): boolean {
  return method === 'GET' && (path === '/health' || path === '/healthz');
}

/**
 * The service and endpoint of a POST, from the path or the headers, set on `request`; an error when the request
 * cannot be served. `contentLength` is the Content-Length header, when there is one.
 */
export function route(
  method: string | undefined,
  path: string,
  contentLength: string | undefined,
  request: ServerRequest,
  max: number,
  sse = false,
): MicroError | undefined {
  const id = request.service || 'micro-fn';
  // A GET that asks for Server-Sent Events is a call too: a browser's EventSource can send nothing else.
  const get = method === 'GET' && sse && path !== '/';
  if (method !== 'POST' && !get)
    return errors.methodNotAllowed(
      id,
      `${method} is not allowed: send POST / with Micro-Service and Micro-Endpoint headers, ${
        // Without streams (build-constants.ts) no GET is a call.
        globalThis.__MICRO_FN_NO_STREAMS__
          ? 'or GET /health'
          : 'GET /health, or GET /<service>/<Service.Method>?request=<JSON> with Accept: text/event-stream'
      }`,
    );
  if (path !== '/') {
    const parts = path.split('/');
    if (parts.length !== 3 || !parts[1] || !parts[2])
      return errors.notFound(
        id,
        `no route for ${path}: POST / with Micro-Service and Micro-Endpoint headers, or POST /<service>/<Service.Method>`,
      );
    try {
      request.service = decodeURIComponent(parts[1]);
      request.endpoint = decodeURIComponent(parts[2]);
    } catch {
      return errors.badRequest(id, `the path ${path} is not valid percent-encoding`);
    }
    request.contentType = handMadeContentType(request.contentType);
  }
  if (!request.endpoint)
    return errors.badRequest(
      request.service || 'micro-fn',
      'the request names no endpoint: set the Micro-Endpoint header or POST /<service>/<Service.Method>',
    );
  if (contentLength !== undefined && Number(contentLength) > max) return tooLarge(request.service, max);
  return undefined;
}

/**
 * The content type of a request routed by its path, which is meant for hand-made requests: `curl -d '{…}'`
 * labels its body as a form, and fetch() a string as text/plain, unless told otherwise; either is taken as JSON.
 */
export function handMadeContentType(contentType: string): string {
  return /^(application\/x-www-form-urlencoded|text\/plain)\b/.test(contentType) ? 'application/json' : contentType;
}

/**
 * The request body of a GET (an EventSource's): the query's `request` parameter, the request as JSON
 * (`?request=%7B%22from%22%3A3%7D`); none is an empty body (`{}`).
 */
export function bodyFromQuery(query: string): Uint8Array {
  const value = new URLSearchParams(query).get('request');
  return value === null ? EMPTY : new TextEncoder().encode(value);
}

/** The 413 for a body over `max` bytes. */
export function tooLarge(service: string, max: number): MicroError {
  return errors.payloadTooLarge(service || 'micro-fn', `the request body is larger than ${max} bytes`);
}
