/**
 * Metadata and errors <-> NATS headers, both directions. Metadata keys go out in lower case (as core Metadata
 * keeps them) and are read case-insensitively. An error reply carries the error JSON in its body, a
 * `micro-error` header with the same JSON, and the NATS Services API's `Nats-Service-Error` /
 * `Nats-Service-Error-Code`, so NATS tooling shows it too.
 */
import type { MsgHdrs } from 'nats';
import {
  Metadata,
  MicroError,
  headers as names,
  parseError,
  type ServerResponse,
  type TransportRequest,
} from '../../core/index.js';

/** The `headers()` factory of the `nats` package, passed in: this file never loads the package itself. */
export type HeadersFactory = () => MsgHdrs;

/** Spelled as the NATS Services API spells them (nats.go reads them by exact name). */
export const SERVICE_ERROR = 'Nats-Service-Error';
export const SERVICE_ERROR_CODE = 'Nats-Service-Error-Code';

/** Not response metadata: the reply's own framing and the copies of the error. */
const NOT_METADATA = new Set([
  names.contentType,
  names.error,
  SERVICE_ERROR.toLowerCase(),
  SERVICE_ERROR_CODE.toLowerCase(),
]);
/** Written by the listener itself, so a handler's metadata cannot duplicate them. */
const RESERVED_REPLY = new Set([...NOT_METADATA, names.id]);

/** A header name NATS accepts: printable ASCII without `:`. Values: no CR or LF. */
const KEY = /^[!-9;-~]+$/;
const VALUE = /^[^\r\n]*$/;
/** Longest detail copied into a header; the body always carries the whole error. */
const MAX_HEADER_DETAIL = 2048;

const decoder = new TextDecoder();

/** Every header as metadata (keys in lower case); repeated names are joined with `, `. */
export function metadataOf(h: MsgHdrs | undefined, skip?: ReadonlySet<string>): Metadata {
  const metadata = new Metadata();
  if (!h) return metadata;
  for (const [key, values] of h) {
    const lower = key.toLowerCase();
    if (skip?.has(lower)) continue;
    const seen = metadata.get(lower);
    const value = values.join(', ');
    metadata.set(lower, seen === undefined ? value : `${seen}, ${value}`);
  }
  return metadata;
}

/** Response metadata: every header but the content type and the error copies. */
export function responseMetadata(h: MsgHdrs | undefined): Metadata {
  return metadataOf(h, NOT_METADATA);
}

/** One header of `h`, whatever the case of its name; undefined when absent. */
export function header(h: MsgHdrs | undefined, name: string): string | undefined {
  if (!h) return undefined;
  const lower = name.toLowerCase();
  for (const [key, values] of h) if (key.toLowerCase() === lower && values.length > 0) return values[0];
  return undefined;
}

/**
 * The headers of an outgoing request: metadata, `micro-id`, and `content-type` unless it is JSON (the default).
 * Service and endpoint are not repeated: the subject names them. Throws a 400 when metadata cannot be a NATS header, so that mistake is never taken for a
 * failed connection.
 */
export function requestHeaders(make: HeadersFactory, request: TransportRequest): MsgHdrs {
  const h = make();
  const id = request.service || 'micro-fn';
  for (const [key, value] of request.metadata) put(h, key, value, id);
  put(h, names.id, request.id, id);
  if (request.contentType !== 'application/json') put(h, names.contentType, request.contentType, id);
  return h;
}

/**
 * The headers of a reply, or undefined for a plain JSON reply without metadata: as NATS services answer, data
 * only (the caller knows its request id, and JSON is the default content type). Throws a 500 when the handler's
 * metadata cannot be a NATS header.
 */
export function replyHeaders(
  make: HeadersFactory,
  requestId: string,
  response: ServerResponse,
  service: string,
): MsgHdrs | undefined {
  const error = response.error;
  const contentType = response.contentType || 'application/octet-stream';
  let h: MsgHdrs | undefined;
  for (const [key, value] of response.metadata)
    if (!RESERVED_REPLY.has(key)) put((h ??= make()), key, value, service, 500);
  if (!h && !error && contentType === 'application/json') return undefined;
  h ??= make();
  put(h, names.contentType, contentType, service, 500);
  put(h, names.id, requestId, service, 500);
  if (error) {
    h.set(names.error, errorHeaderValue(error));
    h.set(SERVICE_ERROR, oneLine(error.detail || error.status));
    h.set(SERVICE_ERROR_CODE, String(error.code));
  }
  return h;
}

export { errorReply } from '../../core/transport.js';

/**
 * Headers carrying `metadata` (names in `reserved` skipped) and, when set, `error` the way a reply carries it
 * (`micro-error` and the NATS Services headers): a stream's end marker. Throws a 500 when metadata cannot be a header.
 */
export function metadataHeaders(
  make: HeadersFactory,
  metadata: Metadata,
  service: string,
  reserved: ReadonlySet<string>,
  error?: MicroError,
): MsgHdrs {
  const h = make();
  for (const [key, value] of metadata)
    if (!reserved.has(key) && !RESERVED_REPLY.has(key)) put(h, key, value, service, 500);
  if (error) {
    h.set(names.error, errorHeaderValue(error));
    h.set(SERVICE_ERROR, oneLine(error.detail || error.status));
    h.set(SERVICE_ERROR_CODE, String(error.code));
  }
  return h;
}

/**
 * The error a reply carries, or undefined. Read from the body's error JSON when it is one, else `micro-error`,
 * else the NATS Services headers (a reply from any NATS service); anything else is a generic remote error.
 */
export function replyError(h: MsgHdrs | undefined, body: Uint8Array, id: string): MicroError | undefined {
  const json = header(h, names.error);
  const code = header(h, SERVICE_ERROR_CODE);
  if (json === undefined && code === undefined) return undefined;
  const fromBody = body.byteLength > 0 && body[0] === 0x7b /* { */ ? errorJson(safeDecode(body), id) : undefined;
  const found = fromBody ?? (json === undefined ? undefined : errorJson(json, id));
  if (found) return found;
  const numeric = Number(code);
  const fallback = Number.isInteger(numeric) && numeric >= 400 && numeric <= 599 ? numeric : 500;
  return new MicroError(id, fallback, (header(h, SERVICE_ERROR) ?? '').slice(0, 512) || 'remote error');
}

/** The MicroError in `text` when it is error JSON (a numeric `code`), else undefined. */
function errorJson(text: string, id: string): MicroError | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof (value as { code?: unknown } | null)?.code === 'number' ? parseError(value, 500, id) : undefined;
}

/** The error JSON with every non-ASCII character escaped and a long detail cut: headers are size-limited. */
function errorHeaderValue(error: MicroError): string {
  const json =
    error.detail.length > MAX_HEADER_DETAIL
      ? JSON.stringify({ ...error.toJSON(), detail: `${error.detail.slice(0, MAX_HEADER_DETAIL)}…` })
      : JSON.stringify(error);
  return json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, MAX_HEADER_DETAIL);
}

function put(h: MsgHdrs, key: string, value: string, id: string, code = 400): void {
  if (!KEY.test(key) || !VALUE.test(value)) {
    const detail = `metadata "${key.slice(0, 64)}" cannot travel as a NATS header: keys are printable ASCII without ":", values have no line breaks`;
    throw new MicroError(id, code, detail, { retryable: false });
  }
  h.set(key, value);
}

function safeDecode(body: Uint8Array): string {
  try {
    return decoder.decode(body);
  } catch {
    return '';
  }
}
