/**
 * A stream over WebSocket on a fetch host (Workers, Deno): `GET /<service>/<Service.Method>` (or `GET /` with
 * `Micro-Service`/`Micro-Endpoint`) with `Upgrade: websocket`, metadata from the headers and from an optional
 * `?metadata=<url-encoded JSON object>` (a browser's WebSocket can set no header). What cannot be served is refused
 * before the upgrade, as an ordinary HTTP error reply, never a 101. The frames are socket-wire.ts's. No `node:`
 * import.
 */
import {
  MicroError,
  errors,
  limitTimeout,
  type Metadata,
  type Router,
  type Runner,
  type ServerRequest,
  type ServerResponse,
  type StreamKind,
} from '../../core/index.js';
import { metadataFromRawHeaders } from './headers.js';
import { requestFromMetadata, route } from './route.js';
import { SocketExchange, type ServerSocket } from './socket-wire.js';

/** How a host takes a WebSocket: a Worker's `WebSocketPair`, `Deno.upgradeWebSocket`. */
export type UpgradeWebSocket = (request: Request) => { socket: ServerSocket; response: Response };

/** What serveWebSocket needs of the fetch handler that calls it. */
export interface SocketHost {
  runner: Runner;
  /** The runner's endpoints, to refuse before the upgrade what could not be served. */
  router: Router;
  upgrade: UpgradeWebSocket;
  /** A stream message's largest size in bytes (the body limit). */
  maxMessage: number;
  waitUntil?(promise: Promise<unknown>): void;
  remainingMs?: number;
}

const EMPTY = /* @__PURE__ */ new Uint8Array(0);

/** True for a WebSocket opening handshake. */
export function isWebSocketRequest(request: Request): boolean {
  return request.method === 'GET' && request.headers.get('upgrade')?.toLowerCase() === 'websocket';
}

/**
 * Answers a WebSocket request: the error reply that refuses it, or the host's 101 with the invocation running on the
 * socket (in `waitUntil`, where the host has it). A server stream's request is the caller's first message (`{}` when
 * it sends `{"end":true}` first); a client or bidi stream's messages are its request stream.
 */
export function serveWebSocket(
  host: SocketHost,
  request: Request,
): { response: Response; error?: undefined } | { error: MicroError; id: string } {
  const url = new URL(request.url);
  const metadata = metadataFromRawHeaders([...request.headers].flat());
  const refused = metadataFromQuery(url.searchParams.get('metadata'), metadata);
  const req = requestFromMetadata(metadata);
  // A WebSocket opens with a GET; it is routed as a POST is, by its path or its headers.
  const error = refused ?? route('POST', url.pathname, undefined, req, host.maxMessage);
  if (error) return { error, id: req.id };
  const kind = streamOf(host.router, host.runner.name, req);
  if (kind instanceof MicroError) return { error: kind, id: req.id };
  req.contentType = 'application/json';
  if (host.remainingMs !== undefined) limitTimeout(req.metadata, host.remainingMs);
  let accepted: ReturnType<UpgradeWebSocket>;
  try {
    accepted = host.upgrade(request);
  } catch (err) {
    // The host refused the handshake (a header it does not take): nothing ran.
    return { error: errors.badRequest(host.runner.name, `no WebSocket: ${(err as Error).message}`), id: req.id };
  }
  const { socket, response } = accepted;
  const exchange = new SocketExchange(socket, req.service, host.maxMessage);
  req.caller = exchange;
  const run = invoke(host.runner, req, kind, exchange);
  if (host.waitUntil) host.waitUntil(run);
  else void run;
  return { response };
}

/** One invocation on the socket; never rejects. */
async function invoke(runner: Runner, req: ServerRequest, kind: StreamKind, exchange: SocketExchange): Promise<void> {
  if (kind === 'server') {
    try {
      const first = await exchange.messages.next();
      req.body = first.done ? EMPTY : first.value;
    } catch {
      return; // the caller went before it sent its request: nothing ran
    } finally {
      exchange.messages.close();
    }
  } else req.stream = exchange.messages;
  let replied = false;
  const reply = async (response: ServerResponse) => {
    if (replied) return;
    replied = true;
    await exchange.reply(response);
  };
  const response = await runner.invoke(req, reply);
  exchange.messages.close();
  await reply(response);
}

/** How the endpoint streams, or why it cannot be called over a WebSocket. */
function streamOf(router: Router, service: string, req: ServerRequest): StreamKind | MicroError {
  if (req.service && req.service !== service) return errors.notFound(service, `service ${req.service} not found`);
  if (!router.handler(req.endpoint))
    return errors.notFound(service, `endpoint ${req.endpoint} not found on service ${service}`);
  return (
    router.stream(req.endpoint) ??
    errors.badRequest(service, `${req.endpoint} does not stream: call it with POST, not over a WebSocket`)
  );
}

/** Sets the `?metadata=` object's entries (strings each) on `metadata`; the error when it is no such object. */
function metadataFromQuery(value: string | null, metadata: Metadata): MicroError | undefined {
  if (value === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  const bad = () =>
    errors.badRequest(
      metadata.get('micro-service') || 'micro-fn',
      'the metadata query parameter must be a JSON object of strings',
    );
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return bad();
  for (const [key, v] of Object.entries(parsed)) {
    if (typeof v !== 'string') return bad();
    metadata.set(key, v);
  }
  return undefined;
}
