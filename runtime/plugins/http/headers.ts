/**
 * Metadata <-> HTTP headers, both directions, for the listener and the fetch client. No `node:` import: the
 * client half runs in Workers too.
 */
import { Metadata, MicroError, errors, headers as names, type TransportRequest } from '../../core/index.js';

/**
 * Headers that describe one HTTP connection or the client program, not the request: never metadata.
 * `accept-language` and `sec-fetch-mode` are added to every request by Node's fetch (undici), not by the caller.
 */
const TRANSPORT = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'accept-encoding',
  'user-agent',
  'accept',
  'accept-language',
  'sec-fetch-mode',
  'expect',
  'te',
  'trailer',
  'upgrade',
]);

/** Also left out of response metadata: the reply's own framing and the error copy. */
const NOT_RESPONSE_METADATA = new Set([...TRANSPORT, names.contentType, 'date', names.error]);

/** Written by the listener itself, so a handler's metadata cannot duplicate or break them. */
const RESERVED_RESPONSE = new Set([...NOT_RESPONSE_METADATA, names.id]);

/** RFC 9110 token characters; metadata keys are lower case already. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
/** Header values are Latin-1 text without control characters (tab allowed). */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** True for a (lower-case) header name that belongs to the connection, not to the request. */
export function isTransportHeader(name: string): boolean {
  return TRANSPORT.has(name) || name.startsWith('proxy-');
}

/** Request metadata from Node's `rawHeaders` (`[name, value, name, value, …]`); repeated names are joined with `, `. */
export function metadataFromRawHeaders(raw: readonly string[]): Metadata {
  const metadata = new Metadata();
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!.toLowerCase();
    if (isTransportHeader(key)) continue;
    const seen = metadata.get(key);
    metadata.set(key, seen === undefined ? raw[i + 1]! : `${seen}, ${raw[i + 1]!}`);
  }
  return metadata;
}

/** Response metadata from a fetch Response's headers. */
export function metadataFromHeaders(headers: Headers): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of headers) {
    if (!NOT_RESPONSE_METADATA.has(key) && !key.startsWith('proxy-')) metadata.set(key, value);
  }
  return metadata;
}

/**
 * The headers of an outgoing mucp request: metadata, then `Micro-Service`, `Micro-Endpoint`, `Micro-Id` and
 * `Content-Type` from the request itself. Throws a 400 when metadata cannot be an HTTP header, so that
 * mistake is never mistaken for a failed connection.
 */
export function requestHeaders(request: TransportRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of request.metadata) {
    if (isTransportHeader(key)) continue;
    if (!TOKEN.test(key) || INVALID_VALUE.test(value)) throw invalidHeader(request.service, key);
    out[key] = value;
  }
  if (request.service) out[names.service] = request.service;
  out[names.endpoint] = request.endpoint;
  out[names.id] = request.id;
  out[names.contentType] = request.contentType;
  for (const key of [names.service, names.endpoint, names.id] as const) {
    const value = out[key];
    if (value !== undefined && INVALID_VALUE.test(value)) throw invalidHeader(request.service, key);
  }
  return out;
}

/** Response metadata as headers, without the names the listener writes itself. */
export function responseHeaders(metadata: Metadata | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (metadata)
    for (const [key, value] of metadata) if (!RESERVED_RESPONSE.has(key) && !key.startsWith('proxy-')) out[key] = value;
  return out;
}

/** Longest detail copied into the `Micro-Error` header; the body always carries the whole error. */
const MAX_HEADER_DETAIL = 2048;

/**
 * The `Micro-Error` header value: the error JSON with every non-ASCII character escaped (`\u00e9`), since a
 * header cannot carry UTF-8 safely; it is still the same JSON. A long detail is cut: headers are size-limited.
 */
export function errorHeaderValue(error: MicroError): string {
  const json =
    error.detail.length > MAX_HEADER_DETAIL
      ? JSON.stringify({ ...error.toJSON(), detail: `${error.detail.slice(0, MAX_HEADER_DETAIL)}…` })
      : JSON.stringify(error);
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function invalidHeader(service: string, key: string): MicroError {
  return errors.badRequest(
    service || 'micro-fn',
    `metadata "${key}" cannot travel as an HTTP header: keys must be header tokens and values Latin-1 text without line breaks`,
    { retryable: false },
  );
}
