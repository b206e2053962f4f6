/**
 * The Lambda Runtime API (version 2018-06-01) of one execution environment, on 127.0.0.1: what a runtime
 * (the official aws-lambda-ric, or a custom one) pulls events from and posts results to. Build-time and
 * `micro-fn serve` only: it never ships inside a function.
 *
 * As on Lambda, an environment handles one event at a time: events wait in a queue, and the next one is handed
 * out when the runtime asks for it (`GET .../invocation/next`) after posting the previous result.
 * https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An error as Lambda's Invoke returns it (with `X-Amz-Function-Error`): what the runtime posted, or the platform's. */
export interface LambdaError {
  errorType: string;
  errorMessage: string;
  /** The Node.js runtime's stack lines. */
  trace?: string[];
}

/**
 * The outcome of one invocation: the payload the runtime posted (JSON text), or an error. A response the runtime
 * streamed (a handler wrapped in `awslambda.streamifyResponse`) is the payload too, buffered as Lambda's Invoke
 * buffers it (up to MAX_RESPONSE_BYTES), unless the invoker takes streams (`invokeStreaming`).
 */
export type InvokeResult = { requestId: string; payload: string } | { requestId: string; error: LambdaError };

/** What `invokeStreaming` resolves with: a streamed response as soon as it begins, else the result as `invoke`'s. */
export type StreamingInvokeResult = InvokeResult | { requestId: string; stream: StreamedResponse };

/**
 * A response the runtime streams (`Lambda-Runtime-Function-Response-Mode: streaming`, a chunked request whose trailers
 * `Lambda-Runtime-Function-Error-Type` / `-Body` report an error after the bytes began). Nothing is buffered here: the
 * runtime's request is read only as fast as `chunks` is iterated, so a slow reader slows the function's writes. The
 * invocation stays the environment's current one (its timeout running) until the stream has ended.
 */
export interface StreamedResponse {
  /** What the function set (`application/octet-stream` by default). */
  contentType: string;
  /**
   * The bytes as they arrive. Iterate it once; it ends when the response ends, however it ends (`end` says how).
   * Breaking out of it leaves the rest unread: call `discard()` then.
   */
  chunks: AsyncIterable<Buffer>;
  /** Resolves once the response has ended: undefined, or the error (the runtime's trailers, a timeout, an exit). */
  end: Promise<LambdaError | undefined>;
  /**
   * Reads the rest and drops it, as Lambda does when its caller goes away: the function is not interrupted, it runs
   * on (within its timeout) and its invocation ends when it ends.
   */
  discard(): void;
}

export interface InvokeOptions {
  /** Milliseconds the function may run once the runtime has the event (the function's timeout). */
  timeoutMs: number;
  /** Default: a fresh UUID. */
  requestId?: string;
  /** Passed as `Lambda-Runtime-Client-Context` (JSON text). */
  clientContext?: string;
}

export interface RuntimeApiOptions {
  /** Sent as `Lambda-Runtime-Invoked-Function-Arn`. */
  functionArn: string;
  /** Called when an invocation ran out of time: Lambda stops such an environment, its owner must too. */
  onTimeout?: (requestId: string) => void;
}

/** Lambda's largest synchronous response. */
export const MAX_RESPONSE_BYTES = 6_291_556;

const PREFIX = '/2018-06-01/runtime';

interface Invocation {
  id: string;
  body: string;
  options: InvokeOptions;
  resolve(result: StreamingInvokeResult): void;
  reject(err: Error): void;
  timer?: ReturnType<typeof setTimeout>;
  /** Whether the invoker takes a streamed response as it comes (else it is buffered into the payload). */
  streams: boolean;
  /** Set once its response streams: how its end is told (the result was handed over when the stream began). */
  ended?: (error: LambdaError | undefined) => void;
  /** Its streamed response has ended (true), or was cut short ('cut'): the invocation ends when the runtime asks for the next. */
  over?: true | 'cut';
}

/**
 * The Runtime API server of one execution environment. Start it with `RuntimeApi.start()`, give the runtime
 * its `address` as `AWS_LAMBDA_RUNTIME_API`, and `invoke()` events.
 * @example
 * const api = await RuntimeApi.start({ functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:hello' });
 * // spawn a runtime with AWS_LAMBDA_RUNTIME_API=api.address, then:
 * const result = await api.invoke({ endpoint: 'Greeter.Hello', body: { name: 'Ada' } }, { timeoutMs: 3000 });
 */
export class RuntimeApi {
  readonly #server: Server;
  readonly #options: RuntimeApiOptions;
  readonly #queue: Invocation[] = [];
  /** Parked `GET .../next` requests, waiting for an event. */
  readonly #waiting = new Set<ServerResponse>();
  /** `GET .../next` requests of a process being stopped (#stopping): never answered. */
  readonly #parked = new Set<ServerResponse>();
  #current: Invocation | undefined;
  /** Reported before any invocation was waiting: served to the next one, as Lambda does. */
  #initError: LambdaError | undefined;
  /** Where the runtime process is: starting, asking for events, or ended (or failed its init). */
  #phase: 'init' | 'ready' | 'gone' = 'gone';
  /**
   * An invocation of the runtime process ran out of time: the process is being stopped (onTimeout) and gets no
   * further event, even if it asks for one before it is gone (its function may answer at its own deadline, then
   * ask for the next); the next event waits for the process started after it (runtimeStarting).
   */
  #stopping = false;
  #initialized = Promise.resolve();
  #endInit: () => void = () => {};

  private constructor(server: Server, options: RuntimeApiOptions) {
    this.#server = server;
    this.#options = options;
  }

  /** Listens on 127.0.0.1 on a free port. */
  static async start(options: RuntimeApiOptions): Promise<RuntimeApi> {
    const server = createServer();
    const api = new RuntimeApi(server, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => api.#route(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    return api;
  }

  /** `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`. */
  get address(): string {
    return `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Invocations queued or running. */
  get pending(): number {
    return this.#queue.length + (this.#current ? 1 : 0);
  }

  /**
   * Queues an event and resolves with its result. `event` is JSON-encoded, unless it is bytes already (an
   * Invoke request's payload as sent). Never rejects for the function's failures: they are results.
   */
  invoke(event: unknown, options: InvokeOptions): Promise<InvokeResult> {
    return this.#enqueue(event, options, false) as Promise<InvokeResult>;
  }

  /**
   * As `invoke`, for an invoker that reads a response the runtime streams as it comes (InvokeWithResponseStream): it
   * resolves with `{stream}` once the stream begins. A response that is not streamed resolves as with `invoke`.
   */
  invokeStreaming(event: unknown, options: InvokeOptions): Promise<StreamingInvokeResult> {
    return this.#enqueue(event, options, true);
  }

  #enqueue(event: unknown, options: InvokeOptions, streams: boolean): Promise<StreamingInvokeResult> {
    const id = options.requestId ?? randomUUID();
    const body = event instanceof Uint8Array ? Buffer.from(event).toString('utf8') : JSON.stringify(event ?? null);
    return new Promise((resolve, reject) => {
      if (this.#initError) {
        resolve({ requestId: id, error: this.#initError });
        this.#initError = undefined;
        return;
      }
      this.#queue.push({ id, body, options, resolve, reject, streams });
      this.#dispatch();
    });
  }

  /** A runtime process is starting: its init phase lasts until it asks for an event or reports an init error. */
  runtimeStarting(): void {
    this.#stopping = false;
    this.#endInit();
    this.#phase = 'init';
    this.#initialized = new Promise((resolve) => (this.#endInit = resolve));
  }

  /**
   * Resolves once the init phase of the runtime process started last is over: it asked for an event, reported
   * an init error, or ended. Whether it succeeded shows in the invocations.
   */
  get initialized(): Promise<void> {
    return this.#initialized;
  }

  /**
   * The runtime process ended (`reason`: `exit status 1`, `signal: killed`). The invocation it was running
   * fails with Lambda's `Runtime.ExitError`; so does the first one waiting, if the runtime died in its init
   * without reporting why (a crash before the handler loaded), so that a runtime that cannot start fails
   * events one by one instead of being restarted for ever.
   */
  runtimeExited(reason: string): void {
    const phase = this.#phase;
    this.#phase = 'gone';
    this.#endInit();
    const inv = this.#current ?? (phase === 'init' ? this.#queue.shift() : undefined);
    if (!inv) return;
    this.#finish(inv, {
      requestId: inv.id,
      error: {
        errorType: 'Runtime.ExitError',
        errorMessage: `RequestId: ${inv.id} Error: Runtime exited with error: ${reason}`,
      },
    });
  }

  /** Stops serving; invocations still queued or running are rejected. */
  async close(): Promise<void> {
    this.#endInit();
    const closed = new Error('the Lambda Runtime API was closed before the invocation finished');
    for (const inv of [...this.#queue.splice(0), ...(this.#current ? [this.#current] : [])]) {
      clearTimeout(inv.timer);
      inv.reject(closed);
      inv.ended?.({ errorType: 'Runtime.Closed', errorMessage: closed.message });
    }
    this.#current = undefined;
    for (const res of [...this.#waiting, ...this.#parked]) res.destroy();
    this.#waiting.clear();
    this.#parked.clear();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '';
    if (req.method === 'GET' && url === `${PREFIX}/invocation/next`) return this.#next(res);
    if (req.method === 'POST' && url === `${PREFIX}/init/error`)
      return void readJson(req, res, (body, type) => this.#onInitError(res, asError(body, type)));
    const match =
      req.method === 'POST' ? /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url) : null;
    if (!match) return reply(res, 404, { errorType: 'NotFound', errorMessage: `no route for ${req.method} ${url}` });
    let id: string;
    try {
      id = decodeURIComponent(match[1]!);
    } catch {
      id = match[1]!; // a malformed escape names no invocation: refused below
    }
    const inv = this.#current?.id === id ? this.#current : undefined;
    // Not running: unknown, finished, or timed out while the runtime still worked on it.
    if (!inv)
      return void req
        .resume()
        .on('end', () =>
          reply(res, 400, { errorType: 'InvalidRequestID', errorMessage: `invocation ${id} is not running` }),
        );
    if (match[2] === 'error') {
      return readJson(req, res, (body, type) => {
        this.#finish(inv, { requestId: id, error: asError(body, type) });
        accepted(res);
      });
    }
    const streamed = /^streaming$/i.test(String(req.headers['lambda-runtime-function-response-mode'] ?? ''));
    if (streamed && inv.streams) return this.#streamed(inv, req, res);
    readBody(req, (body) => {
      if (body === undefined) {
        this.#finish(inv, {
          requestId: id,
          error: {
            errorType: 'Function.ResponseSizeTooLarge',
            errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
          },
        });
        return reply(res, 413, {
          errorType: 'RequestEntityTooLarge',
          errorMessage: `the response is larger than ${MAX_RESPONSE_BYTES} bytes`,
        });
      }
      // A streamed response read whole (a plain Invoke of a streaming function): its trailers may report an error.
      this.#finish(inv, { requestId: id, ...((streamed && trailerError(req.trailers)) || { payload: body }) });
      accepted(res);
    });
  }

  /**
   * A response the runtime streams: handed to the invoker at once, read as the invoker reads it. The invocation ends
   * with the request: its trailers say whether the function failed; a request cut short is a runtime that died (its
   * exit, or the timeout, ends the invocation first, with their own error).
   */
  #streamed(inv: Invocation, req: IncomingMessage, res: ServerResponse): void {
    let settle: (error: LambdaError | undefined) => void = () => {};
    const end = new Promise<LambdaError | undefined>((resolve) => (settle = resolve));
    inv.ended = (error) => {
      inv.ended = undefined;
      settle(error);
      if (!req.complete) req.destroy();
    };
    // The response is over, not the invocation: as on Lambda, that lasts (its timeout running) until the runtime asks
    // for the next event, which the RIC does once the handler has returned and, by default, the event loop is empty.
    req.on('end', () => {
      if (this.#current !== inv) return;
      inv.ended?.(trailerError(req.trailers)?.error);
      inv.over = true;
      accepted(res);
    });
    // Cut short: most likely the runtime died (its exit ends the invocation as Runtime.ExitError); a runtime that
    // lives on and asks for the next event ends it then (#next); else the timeout does.
    req.on('close', () => {
      if (this.#current === inv && !req.complete) inv.over = 'cut';
    });
    const contentType = req.headers['content-type'] ?? 'application/octet-stream';
    inv.resolve({
      requestId: inv.id,
      stream: { contentType, chunks: chunksOf(req), end, discard: () => void req.resume() },
    });
  }

  #next(res: ServerResponse): void {
    // The process that timed out, asking before its stop reached it: never answered (it is being killed).
    if (this.#stopping) {
      this.#parked.add(res);
      res.on('close', () => this.#parked.delete(res));
      return;
    }
    const current = this.#current;
    if (current?.over)
      this.#finish(current, {
        requestId: current.id,
        ...(current.over === 'cut'
          ? {
              error: {
                errorType: 'Runtime.StreamAborted',
                errorMessage: 'the runtime cut its streamed response short',
              },
            }
          : { payload: '' }),
      });
    this.#phase = 'ready';
    this.#endInit();
    this.#waiting.add(res);
    res.on('close', () => this.#waiting.delete(res));
    this.#dispatch();
  }

  /** Hands the next queued event to a waiting runtime, unless one is running or the runtime is being stopped. */
  #dispatch(): void {
    if (this.#current || this.#stopping) return;
    const [res] = this.#waiting;
    const inv = this.#queue[0];
    if (!res || !inv) return;
    this.#queue.shift();
    this.#waiting.delete(res);
    this.#current = inv;
    const deadline = Date.now() + inv.options.timeoutMs;
    inv.timer = setTimeout(() => {
      const seconds = (inv.options.timeoutMs / 1000).toFixed(2);
      if (this.#options.onTimeout) this.#stopping = true; // before #finish hands a waiting process the next event
      this.#finish(inv, {
        requestId: inv.id,
        error: {
          errorType: 'Sandbox.Timedout',
          errorMessage: `RequestId: ${inv.id} Error: Task timed out after ${seconds} seconds`,
        },
      });
      this.#options.onTimeout?.(inv.id);
    }, inv.options.timeoutMs);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': inv.id,
      'lambda-runtime-deadline-ms': String(deadline),
      'lambda-runtime-invoked-function-arn': this.#options.functionArn,
      'lambda-runtime-trace-id': traceId(),
    };
    if (inv.options.clientContext) headers['lambda-runtime-client-context'] = inv.options.clientContext;
    res.writeHead(200, headers).end(inv.body);
  }

  #finish(inv: Invocation, result: InvokeResult): void {
    clearTimeout(inv.timer);
    if (this.#current === inv) this.#current = undefined;
    if (inv.ended) inv.ended('error' in result ? result.error : undefined);
    else inv.resolve(result);
    this.#dispatch();
  }

  #onInitError(res: ServerResponse, error: LambdaError): void {
    // The runtime exits after reporting. The error answers the first invocation waiting, else the next to come.
    this.#phase = 'gone';
    this.#endInit();
    const first = this.#queue.shift();
    if (first) first.resolve({ requestId: first.id, error });
    else this.#initError = error;
    accepted(res);
  }
}

/** The bytes of a streamed response; iterating stops at its end or when it is cut (never throws: `end` says why). */
async function* chunksOf(req: IncomingMessage): AsyncGenerator<Buffer> {
  try {
    // destroyOnReturn false: a reader that stops early leaves the request to discard(), not reset.
    for await (const chunk of req.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
  } catch {
    // cut short: the invocation's end carries the reason
  }
}

/** The error a streamed response's trailers report (the RIC's `fail`: type, and the error as base64 JSON), if any. */
function trailerError(trailers: NodeJS.Dict<string>): { error: LambdaError } | undefined {
  const type = trailers['lambda-runtime-function-error-type'];
  const body = trailers['lambda-runtime-function-error-body'];
  if (!type && !body) return undefined;
  let parsed: unknown;
  try {
    parsed = body ? JSON.parse(Buffer.from(body, 'base64').toString('utf8')) : undefined;
  } catch {
    parsed = undefined;
  }
  return { error: asError(parsed, type) };
}

/** An X-Ray trace header, as Lambda passes one to every invocation. */
function traceId(): string {
  const epoch = Math.floor(Date.now() / 1000)
    .toString(16)
    .padStart(8, '0');
  return `Root=1-${epoch}-${randomBytes(12).toString('hex')};Parent=${randomBytes(8).toString('hex')};Sampled=0`;
}

/** Reads a body of at most MAX_RESPONSE_BYTES; `undefined` past that (the rest is drained, not kept). */
function readBody(req: IncomingMessage, done: (body: string | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
  });
  req.on('end', () => done(size <= MAX_RESPONSE_BYTES ? Buffer.concat(chunks).toString('utf8') : undefined));
}

/** Reads an error report: its JSON body (any JSON, possibly none) and `Lambda-Runtime-Function-Error-Type`. */
function readJson(
  req: IncomingMessage,
  res: ServerResponse,
  done: (body: unknown, type: string | undefined) => void,
): void {
  readBody(req, (text) => {
    if (text === undefined)
      return reply(res, 413, {
        errorType: 'RequestEntityTooLarge',
        errorMessage: `the error report is larger than ${MAX_RESPONSE_BYTES} bytes`,
      });
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    const type = req.headers['lambda-runtime-function-error-type'];
    done(body, typeof type === 'string' ? type : undefined);
  });
}

/** The error a runtime reported, in the shape Invoke returns; the header's type stands in for a missing body. */
function asError(body: unknown, type: string | undefined): LambdaError {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Partial<LambdaError> & { stackTrace?: string[] };
  const error: LambdaError = {
    errorType: typeof b.errorType === 'string' ? b.errorType : (type ?? 'Runtime.Unknown'),
    errorMessage: typeof b.errorMessage === 'string' ? b.errorMessage : '',
  };
  const trace = b.trace ?? b.stackTrace;
  if (Array.isArray(trace)) error.trace = trace.map(String);
  return error;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

function accepted(res: ServerResponse): void {
  reply(res, 202, { status: 'OK' });
}
