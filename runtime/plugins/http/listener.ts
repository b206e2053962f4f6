/**
 * The HTTP listener: go-micro's "mucp over HTTP" on node:http. The only file of the plugin that needs Node.
 */
import type { IncomingMessage, Server, ServerResponse as NodeResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  ConfigError,
  HEALTH_ENDPOINT,
  MicroError,
  errors,
  notStarted,
  toMicroError,
  type Listener,
  type RequestHandler,
  type ServerRequest,
} from '../../core/index.js';
import { DEFAULT_LISTEN_ADDRESS, nodeAddress, parseListenAddress } from './address.js';
import { errorHeaderValue, metadataFromRawHeaders } from './headers.js';
import { ConnectionCap } from './connections.js';
import { Exchange, discard, readBody, type ExchangeOwner } from './exchange.js';
import { LINGER_BYTES } from './read-all.js';
import { DEFAULT_MAX_BODY_SIZE, bodyFromQuery, isProbe, requestFromMetadata, route, tooLarge } from './route.js';
import { acceptsEventStream, isNdjson } from './framing.js';
import { NdjsonRequestStream } from './request-stream.js';
import type {} from '../../core/build-constants.js';

export { DEFAULT_MAX_BODY_SIZE } from './route.js';

export interface HttpListenerOptions {
  /** Where to bind: `127.0.0.1:0` (default), `:8080` (every interface), `[::1]:0` or `http://host:port`. */
  address?: string;
  /** Largest request body in bytes; a larger one is answered 413 (and drained, within bounds). Default 1 MiB. */
  maxBodySize?: number;
  /** Milliseconds `close()` waits for in-flight replies before it cuts the connections left. Default 2000. */
  closeTimeout?: number;
  /** The node address to register instead of the bound one, e.g. `http://10.0.0.5:8080` behind a wildcard bind. */
  advertise?: string;
  /**
   * Other HTTP APIs served beside mucp, by path prefix: a request whose path starts with one goes to its
   * handler untouched (`micro-fn serve` mounts the local Lambda API on `/2015-03-31/`). A handler must answer.
   */
  mounts?: Record<string, (req: IncomingMessage, res: NodeResponse) => void>;
  /**
   * Connections open at once. Past it, a new connection replaces the oldest one without a request in progress;
   * when all are busy it is refused with a 503. Default 1000.
   */
  maxConnections?: number;
  /** Milliseconds a client has to send a request's headers (Node's `headersTimeout`); then 408. Default 10 000. */
  headersTimeout?: number;
  /** Milliseconds a client has to send a whole request, body included (Node's `requestTimeout`); then 408. Default 30 000. */
  requestTimeout?: number;
  /** Milliseconds a keep-alive connection may wait for its next request before it is closed. Default 5000. */
  keepAliveTimeout?: number;
}

/** The listener's defaults for what a client may hold: connections, and seconds to send a request. */
export const LISTENER_LIMITS = {
  maxConnections: 1000,
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
} as const;

const DEFAULT_CLOSE_TIMEOUT = 2000;
const ignore = (): void => {};

/**
 * Serves requests as `POST /` with `Micro-Service` / `Micro-Endpoint` / `Micro-Id` headers, or
 * `POST /<service>/<Service.Method>` (curl), and health probes as `GET /health` (`/healthz`), which reach the
 * handler as `probe: true` requests for `Debug.Health`. Every error it answers itself (405, 400, 404, 413, 503
 * while closing, 500 for a handler that throws) is go-micro error JSON, in the body and in `Micro-Error`.
 * Create it with createHttpListener (or HttpTransport.listen).
 */
export class HttpListener implements Listener, ExchangeOwner {
  #server!: Server;
  readonly #handler: RequestHandler;
  readonly #maxBodySize: number;
  readonly #closeTimeout: number;
  readonly #connections: ConnectionCap;
  readonly #options: HttpListenerOptions;
  /** `options.mounts` as pairs, made once: the request path checks it on every request. */
  readonly #mounts: [string, NonNullable<HttpListenerOptions['mounts']>[string]][];
  #address = '';
  #closing = false;
  /** Set once everything that had arrived when closing began has been read: idle connections may go from then. */
  #drained = false;
  /** Connections accepted and requests begun, counted to tell when the sockets have nothing more to give. */
  #arrivals = 0;
  #closed: Promise<void> | undefined;
  /** Sockets whose request in progress is a stream: Node's requestTimeout does not cut them. */
  readonly #streaming = new WeakSet<Socket>();
  /** Connections upgraded to a WebSocket: node:http no longer sees them, so `close()` cuts them itself. */
  readonly #upgraded = new Set<Socket>();

  constructor(handler: RequestHandler, options: HttpListenerOptions = {}) {
    this.#handler = handler;
    this.#options = options;
    this.#mounts = Object.entries(options.mounts ?? {});
    this.#maxBodySize = positive(options.maxBodySize, DEFAULT_MAX_BODY_SIZE, 'maxBodySize');
    this.#closeTimeout = positive(options.closeTimeout, DEFAULT_CLOSE_TIMEOUT, 'closeTimeout');
    const max = positive(options.maxConnections, LISTENER_LIMITS.maxConnections, 'maxConnections');
    this.#connections = new ConnectionCap(max, refuseConnection);
    const headers = positive(options.headersTimeout, LISTENER_LIMITS.headersTimeout, 'headersTimeout');
    const request = positive(
      options.requestTimeout,
      Math.max(headers, LISTENER_LIMITS.requestTimeout),
      'requestTimeout',
    );
    if (headers > request)
      throw new ConfigError(`headersTimeout (${headers} ms) must not be longer than requestTimeout (${request} ms)`);
    this.#timeouts = {
      headersTimeout: headers,
      requestTimeout: request,
      keepAliveTimeout: positive(options.keepAliveTimeout, LISTENER_LIMITS.keepAliveTimeout, 'keepAliveTimeout'),
      // How often Node looks for requests past their timeouts (its default, 30 s, would let one live 40 s).
      connectionsCheckingInterval: Math.min(1000, headers / 4),
    };
  }

  readonly #timeouts: {
    headersTimeout: number;
    requestTimeout: number;
    keepAliveTimeout: number;
    connectionsCheckingInterval: number;
  };

  /** `http://127.0.0.1:<port>` once started. */
  get address(): string {
    return this.#address;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Binds the address; createHttpListener calls it. */
  async start(): Promise<this> {
    const { host, port } = parseListenAddress(this.#options.address ?? DEFAULT_LISTEN_ADDRESS);
    // Loaded here, not at the top: a bundle that holds this plugin loads node:http only when it listens.
    const { createServer } = await import('node:http');
    // requireHostHeader off: a mucp client need not send Host, and Node's own 400 would not be error JSON.
    const server = (this.#server = createServer({ requireHostHeader: false, ...this.#timeouts }, (req, res) =>
      this.#onRequest(req, res, 'none'),
    ));
    server.keepAliveTimeout = this.#timeouts.keepAliveTimeout;
    server.on('connection', this.#connections.accept);
    server.on('connection', () => this.#arrivals++);
    server.on('checkContinue', (req: IncomingMessage, res: NodeResponse) => this.#onRequest(req, res, 'continue'));
    // An Expect other than 100-continue: Node would answer 417 itself, with an empty body.
    server.on('checkExpectation', (req: IncomingMessage, res: NodeResponse) => this.#onRequest(req, res, 'unknown'));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Node's requestTimeout counts until a request's body has fully arrived: a request stream (client, bidi) is
      // meant to take as long as it takes, bounded by its deadline instead. Ignoring the timeout is all it takes:
      // Node does nothing more once a 'clientError' listener is there, and checks a connection once.
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && this.#streaming.has(socket)) return;
      onClientError(err, socket);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#onUpgrade(req, socket, head));
    // CONNECT (a proxy tunnel): Node would drop the socket without a word.
    server.on('connect', (req: IncomingMessage, socket: Socket) =>
      writeRaw(socket, errors.methodNotAllowed('micro-fn', `${req.method} is not allowed: send POST, or GET /health`)),
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: unknown) => {
      const code = (err as { code?: string }).code ?? (err as Error).message;
      const hint =
        code === 'EADDRINUSE'
          ? ' (the port is taken: pick another, or port 0 for a free one)'
          : code === 'EACCES'
            ? ' (ports below 1024 need privileges)'
            : '';
      throw new ConfigError(`the HTTP listener cannot bind ${host}:${port}: ${code}${hint}`, { cause: err });
    });
    // Accept errors (EMFILE, …) must not crash a function that is serving.
    server.on('error', ignore);
    const bound = server.address() as AddressInfo;
    this.#address = this.#options.advertise ?? nodeAddress(bound.address, bound.port);
    return this;
  }

  /**
   * Stops serving: every request that has arrived, or whose bytes sit in a socket's buffer or a connection in the
   * accept queue, is answered (a retryable 503, `Connection: close`) before any connection is closed; then it stops
   * accepting, lets in-flight requests finish, closes idle keep-alive connections and resolves. Connections still
   * open after `closeTimeout` are cut.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    const server = this.#server;
    if (!server?.listening) return;
    const force = setTimeout(() => {
      server.closeAllConnections();
      for (const socket of this.#upgraded) socket.destroy();
    }, this.#closeTimeout);
    await this.#drain(Date.now() + this.#closeTimeout);
    this.#drained = true;
    // Node's close() also closes the connections that are idle now: none of them has unread bytes left.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await closed;
    clearTimeout(force);
  }

  /**
   * Reads everything the sockets hold before a connection is closed: closing a socket whose request bytes are
   * still unread resets it (the caller gets ECONNRESET instead of the 503), and closing the listening socket resets
   * the connections in its accept queue. Waits for event-loop turns whose I/O poll began after the last arrival
   * (a connection accepted, a request begun) until one brings nothing new; bounded by `until`.
   */
  async #drain(until: number): Promise<void> {
    for (;;) {
      const seen = this.#arrivals;
      await pollTurn();
      if (this.#arrivals === seen || Date.now() >= until) return;
    }
  }

  settled(): void {
    // A keep-alive connection becomes idle when its response finishes: close it now rather than at the timeout.
    if (this.#drained) this.#server?.closeIdleConnections();
  }

  #onRequest(req: IncomingMessage, res: NodeResponse, expect: Expect): void {
    this.#arrivals++;
    try {
      this.#connections.busy(req.socket, res);
      this.#accept(req, res, expect);
    } catch {
      // Unreachable by design; a bug here must cost one connection, never the process.
      res.destroy();
    }
  }

  /**
   * A request with `Upgrade`: a WebSocket stream (websocket.ts, loaded at the first one: a function that never sees
   * one does not pay for it). While closing, the retryable 503 as for any request.
   */
  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    this.#arrivals++;
    socket.on('error', ignore);
    // Node leaves an upgraded socket without a 'data' listener: paused, nothing it receives is lost meanwhile.
    socket.pause();
    if (this.#closing) return writeRaw(socket, closingError(''));
    // A bundle of a function that has no stream leaves the WebSocket code out (runtime/core/build-constants.ts).
    const websocket = globalThis.__MICRO_FN_NO_STREAMS__ ? undefined : import('./websocket.js');
    if (!websocket)
      return writeRaw(socket, errors.badRequest('micro-fn', 'no endpoint of this function streams: send POST'));
    this.#connections.upgraded(socket);
    this.#upgraded.add(socket);
    socket.once('close', () => this.#upgraded.delete(socket));
    // A bug here must cost one connection, never the process (a rejection nobody handles would end it).
    websocket
      .then((ws) => ws.acceptWebSocket(req, socket, head, { handler: this.#handler, maxMessage: this.#maxBodySize }))
      .catch(() => socket.destroy());
  }

  #accept(req: IncomingMessage, res: NodeResponse, expect: Expect): void {
    req.on('error', ignore);
    // A mounted API answers for itself, an unknown expectation included.
    for (const [prefix, handle] of this.#mounts) if (req.url?.startsWith(prefix)) return handle(req, res);
    const expectsContinue = expect === 'continue';
    const metadata = metadataFromRawHeaders(req.rawHeaders);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const request = requestFromMetadata(metadata);
    const probe = isProbe(req.method, path);
    const sse = acceptsEventStream(req.headers.accept);
    // A request stream (client, bidi) is one JSON value per line, of any length: only each line is bounded.
    const streamed = isNdjson(req.headers['content-type']);
    const failure = this.#closing
      ? closingError(request.service)
      : expect === 'unknown'
        ? expectationFailed(request.service, req.headers.expect)
        : probe
          ? undefined
          : route(
              req.method,
              path,
              streamed ? undefined : req.headers['content-length'],
              request,
              this.#maxBodySize,
              sse,
            );
    const ex = new Exchange(this, res, request.id, request.service);
    ex.sse = sse;
    request.caller = ex;
    if (failure) {
      if (failure.code === 405) res.setHeader('allow', 'POST');
      // A body too large to read but small enough to drain is discarded as it arrives, so the client finishes
      // sending and reads its 413; closing while it still sends makes its socket reset, and most clients then
      // report a failed connection instead of the answer. Anything else we will not read: close.
      const drain =
        failure.code === 413 &&
        !expectsContinue &&
        !this.#closing &&
        Number(req.headers['content-length']) <= this.#maxBodySize + LINGER_BYTES;
      ex.fail(failure, !drain && (failure.code === 413 || expect !== 'none' || this.#closing));
      if (drain) discard(req, 0);
      return;
    }
    if (probe) {
      request.endpoint = HEALTH_ENDPOINT;
      request.probe = true;
      req.resume();
      return this.#dispatch(ex, request);
    }
    if (expectsContinue) res.writeContinue();
    if (req.method === 'GET') {
      request.body = bodyFromQuery(q === -1 ? '' : url.slice(q + 1));
      req.resume();
      return this.#dispatch(ex, request);
    }
    if (streamed) {
      const socket = req.socket;
      this.#streaming.add(socket);
      res.once('close', () => this.#streaming.delete(socket));
      request.contentType = 'application/json';
      request.stream = new NdjsonRequestStream(req, this.#maxBodySize, request.service);
      return this.#dispatch(ex, request);
    }
    readBody(req, this.#maxBodySize, (body) => {
      if (body) {
        request.body = body;
        this.#dispatch(ex, request);
      } else {
        // Over the limit mid-stream (no Content-Length): the 413 goes out now, the rest is drained (as above).
        ex.fail(tooLarge(request.service, this.#maxBodySize));
        discard(req, this.#maxBodySize);
      }
    });
  }

  #dispatch(ex: Exchange, request: ServerRequest): void {
    let result: Promise<void>;
    try {
      result = Promise.resolve(this.#handler(request, ex.reply));
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      () => {
        // A request stream the handler left unread (or never got: an error, a refusal) is read no further.
        if (request.stream) void request.stream[Symbol.asyncIterator]().return?.();
        if (!ex.replied) ex.fail(errors.internal(ex.service || 'micro-fn', 'the handler finished without a reply'));
      },
      (err: unknown) => {
        if (!ex.replied) ex.fail(toMicroError(err, ex.service || 'micro-fn'));
      },
    );
  }
}

/**
 * Starts an HTTP listener that hands every request to `handler`.
 * @example
 * const listener = await createHttpListener(async (request, reply) => {
 *   await reply({ status: 200, contentType: 'application/json', body: request.body, metadata: new Metadata() });
 * }, { address: '127.0.0.1:0' });
 * console.log(listener.address); // http://127.0.0.1:40123
 * await listener.close();
 */
export async function createHttpListener(
  handler: RequestHandler,
  options?: HttpListenerOptions,
): Promise<HttpListener> {
  return new HttpListener(handler, options).start();
}

/** How a request asked to be answered before its body is sent: `Expect: 100-continue`, another expectation, none. */
type Expect = 'none' | 'continue' | 'unknown';

/** The 417 for an `Expect` other than `100-continue`, the only expectation HTTP/1.1 defines. */
function expectationFailed(service: string, expect: string | undefined): MicroError {
  return new MicroError(
    service || 'micro-fn',
    417,
    `Expect: ${String(expect).slice(0, 64)} is not supported: send Expect: 100-continue, or no Expect header`,
  );
}

/** A connection past the cap while every open one is busy: a 503 as error JSON, then the socket goes. */
function refuseConnection(socket: Socket): void {
  const error = notStarted(503, 'too many connections are open; try again shortly');
  writeRaw(socket, error);
}

/**
 * Resolves after an event-loop turn whose I/O poll began after the call: the first setImmediate runs in this
 * turn's check phase (after the poll that was under way), the second in the next turn's, after a fresh poll. Bytes
 * that were in a socket's buffer when it was called have been read by then, and their requests begun.
 */
function pollTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

function closingError(service: string): MicroError {
  return notStarted(503, `${service ? `${service}: ` : ''}the listener is closing; try another instance`);
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const unit = name === 'maxBodySize' ? 'bytes' : name === 'maxConnections' ? 'connections' : 'milliseconds';
  if (!Number.isFinite(value) || value <= 0)
    throw new ConfigError(`${name} must be a positive number of ${unit}; got ${value}`);
  return value;
}

/** Malformed HTTP never reaches a handler: answer 400 as error JSON (408 for a request timeout), then drop the socket. */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // Platform seam: Node's own default checks `_httpMessage` the same way (a response already under way).
  const started = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (err.code === 'ECONNRESET' || !socket.writable || started) return void socket.destroy();
  const error =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? errors.timeout('micro-fn', 'the request took too long to arrive')
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? new MicroError('micro-fn', 431, 'the request headers are too large (16 KiB at most)')
        : errors.badRequest('micro-fn', `malformed HTTP request (${err.code ?? 'parse error'})`);
  writeRaw(socket, error);
}

/** An error answered straight on the socket (no request object to answer with), then the connection closes. */
function writeRaw(socket: Socket, error: MicroError): void {
  const body = JSON.stringify(error);
  socket.end(
    `HTTP/1.1 ${error.code} ${error.status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Micro-Error: ${errorHeaderValue(error)}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroySoon();
}
