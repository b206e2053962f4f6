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
  toMicroError,
  type Listener,
  type RequestHandler,
  type ServerRequest,
} from '../../core/index.js';
import { DEFAULT_LISTEN_ADDRESS, nodeAddress, parseListenAddress } from './address.js';
import { errorHeaderValue, metadataFromRawHeaders } from './headers.js';
import { Exchange, readBody, type ExchangeOwner } from './exchange.js';
import { DEFAULT_MAX_BODY_SIZE, isProbe, requestFromMetadata, route, tooLarge } from './route.js';

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
}

const DEFAULT_CLOSE_TIMEOUT = 2000;
/** How much of a refused body is read and thrown away so its client can read the 413, and for how long. */
const LINGER_BYTES = 8 * 1024 * 1024;
const LINGER_MS = 2000;
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
  readonly #options: HttpListenerOptions;
  /** `options.mounts` as pairs, made once: the request path checks it on every request. */
  readonly #mounts: [string, NonNullable<HttpListenerOptions['mounts']>[string]][];
  #address = '';
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(handler: RequestHandler, options: HttpListenerOptions = {}) {
    this.#handler = handler;
    this.#options = options;
    this.#mounts = Object.entries(options.mounts ?? {});
    this.#maxBodySize = positive(options.maxBodySize, DEFAULT_MAX_BODY_SIZE, 'maxBodySize');
    this.#closeTimeout = positive(options.closeTimeout, DEFAULT_CLOSE_TIMEOUT, 'closeTimeout');
  }

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
    const server = (this.#server = createServer({ requireHostHeader: false }, (req, res) =>
      this.#onRequest(req, res, false),
    ));
    server.on('checkContinue', (req: IncomingMessage, res: NodeResponse) => this.#onRequest(req, res, true));
    server.on('clientError', onClientError);
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
   * Stops accepting, lets in-flight requests finish (their replies complete, with `Connection: close`), closes
   * idle keep-alive connections and resolves. Connections still open after `closeTimeout` are cut.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    const server = this.#server;
    if (!server?.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), this.#closeTimeout);
    await closed;
    clearTimeout(force);
  }

  settled(): void {
    // A keep-alive connection becomes idle when its response finishes: close it now rather than at the timeout.
    if (this.#closing) this.#server?.closeIdleConnections();
  }

  #onRequest(req: IncomingMessage, res: NodeResponse, expectsContinue: boolean): void {
    try {
      this.#accept(req, res, expectsContinue);
    } catch {
      // Unreachable by design; a bug here must cost one connection, never the process.
      res.destroy();
    }
  }

  #accept(req: IncomingMessage, res: NodeResponse, expectsContinue: boolean): void {
    req.on('error', ignore);
    for (const [prefix, handle] of this.#mounts) if (req.url?.startsWith(prefix)) return handle(req, res);
    const metadata = metadataFromRawHeaders(req.rawHeaders);
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const request = requestFromMetadata(metadata);
    const probe = isProbe(req.method, path);
    const failure = this.#closing
      ? closingError(request.service)
      : probe
        ? undefined
        : route(req.method, path, req.headers['content-length'], request, this.#maxBodySize);
    const ex = new Exchange(this, res, request.id, request.service);
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
      ex.fail(failure, !drain && (failure.code === 413 || expectsContinue || this.#closing));
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

/**
 * Reads and throws away the rest of a refused request body, so that its client finishes sending and reads the
 * answer. Bounded: past LINGER_BYTES more, or LINGER_MS, the connection is cut.
 */
function discard(req: IncomingMessage, already: number): void {
  let bytes = 0;
  const cut = () => req.socket.destroy();
  const timer = setTimeout(cut, LINGER_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes + already > already + LINGER_BYTES) {
      clearTimeout(timer);
      cut();
    }
  });
  const done = () => clearTimeout(timer);
  req.once('end', done).once('close', done);
  req.resume();
}

function closingError(service: string): MicroError {
  return errors.unavailable(service || 'micro-fn', 'the listener is closing; try another instance');
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0)
    throw new ConfigError(
      `${name} must be a positive number of ${name === 'closeTimeout' ? 'milliseconds' : 'bytes'}; got ${value}`,
    );
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
      : errors.badRequest('micro-fn', `malformed HTTP request (${err.code ?? 'parse error'})`);
  const body = JSON.stringify(error);
  socket.end(
    `HTTP/1.1 ${error.code} ${error.status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Micro-Error: ${errorHeaderValue(error)}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroySoon();
}
