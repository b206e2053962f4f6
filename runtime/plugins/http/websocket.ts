/**
 * A stream over WebSocket (RFC 6455) on the Node listener: how a browser, or any WebSocket client, talks to a client,
 * bidi or server stream. The listener loads this module only when an upgrade arrives. The wire (README, "Wire
 * format"): a TEXT frame is one JSON message, both ways; a BINARY frame is a control object: the server sends
 * `{"metadata":{…}}` first, then its messages, then `{"end":true,"trailers":{…}}` or `{"error":…,"trailers":{…}}`,
 * then a close 1000; the client sends `{"end":true}` after its last message, and a close before the server's end
 * cancels the stream.
 *
 * The 101 goes out only once the invocation has started: when the handler first reads the request stream, or
 * replies. A refusal before that (another service, an unknown endpoint, one that does not stream, a one-shot instance
 * already taken: the retryable 503) is an ordinary HTTP error answer to the handshake.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { MicroError, REQUEST_IN_STREAM, errors } from '../../core/index.js';
import { metadataFromRawHeaders } from './headers.js';
import { requestFromMetadata, route } from './route.js';
import { acceptKey, validKey } from './websocket-frames.js';
import { WebSocketStream, writeError, type WebSocketOptions } from './websocket-stream.js';

export { WS_REQUEST_BUFFER, type WebSocketOptions } from './websocket-stream.js';

/**
 * Takes an upgrade request off the listener: checks the handshake and the route, then hands the request, its stream
 * and its caller to the handler. Every refusal before the 101 is error JSON with its HTTP status.
 */
export function acceptWebSocket(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  options: WebSocketOptions,
): Promise<void> | void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const refuse = (error: MicroError, extra?: Record<string, string>) => writeError(socket, error, extra);
  if (String(req.headers.upgrade).toLowerCase() !== 'websocket')
    return refuse(
      errors.badRequest(
        'micro-fn',
        `Upgrade: ${String(req.headers.upgrade).slice(0, 32)} is not served: send the request without Upgrade, or Upgrade: websocket to stream`,
      ),
    );
  if (req.method !== 'GET')
    return refuse(errors.methodNotAllowed('micro-fn', `a WebSocket opens with GET, not ${req.method}`), {
      Allow: 'GET',
    });
  if (req.headers['sec-websocket-version'] !== '13')
    return refuse(new MicroError('micro-fn', 426, 'only WebSocket version 13 (RFC 6455) is served'), {
      'Sec-WebSocket-Version': '13',
    });
  const key = req.headers['sec-websocket-key'];
  if (!validKey(key)) return refuse(errors.badRequest('micro-fn', 'Sec-WebSocket-Key must be 16 bytes in base64'));
  const metadata = metadataFromRawHeaders(req.rawHeaders);
  for (const [k] of metadata) if (k.startsWith('sec-websocket-')) metadata.delete(k);
  const extra = metadataFromQuery(q === -1 ? '' : url.slice(q + 1));
  if (extra instanceof MicroError) return refuse(extra);
  metadata.merge(extra);
  const request = requestFromMetadata(metadata);
  const failure = route('POST', path, undefined, request, options.maxMessage);
  if (failure) return refuse(failure);
  // Streams are JSON, whatever a handshake's headers say.
  request.contentType = 'application/json';
  request.metadata.set(REQUEST_IN_STREAM, '1');
  return acceptKey(key).then((accept) => {
    // Gone while the key was hashed: nothing to serve.
    if (!socket.destroyed) new WebSocketStream(socket, head, accept, request, options).dispatch(options.handler);
  });
}

/** Request metadata from `?metadata=<url-encoded JSON object>`: a browser's WebSocket cannot set headers. */
function metadataFromQuery(query: string): Record<string, string> | MicroError {
  const raw = new URLSearchParams(query).get('metadata');
  if (raw === null) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value))
    return errors.badRequest('micro-fn', '?metadata= must be a URL-encoded JSON object of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string')
      return errors.badRequest('micro-fn', `?metadata= must be a JSON object of strings; ${k} is not a string`);
    out[k.toLowerCase()] = v;
  }
  return out;
}
