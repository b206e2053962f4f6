/**
 * The local Lambda API that `micro-fn serve` mounts under `/2015-03-31/`: the part of Lambda's REST API that
 * `micro-fn deploy --target lambda` and the Lambda transport use, answered in AWS's shapes so the AWS SDK
 * (and its waiters) work against it unchanged. Functions run from their deployment packages the way Lambda
 * runs them (functions.ts). Every request must be signed with AWS Signature Version 4 by a key serve accepts
 * (sigv4.ts), checked before anything runs.
 * https://docs.aws.amazon.com/lambda/latest/api/API_Operations.html
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LambdaApiError, apiErrors } from './api-error.js';
import { readArchitectures, readSettings } from './configuration.js';
import { listFunctions, paged, versionKey } from './listing.js';
import { Functions, type FunctionsOptions } from './functions.js';
import { MAX_RESPONSE_BYTES, type LambdaError } from './runtime-api.js';
import { EVENT_STREAM_CONTENT_TYPE, invokeComplete, payloadChunks, type InvokeComplete } from './event-stream.js';
import { ReceiveBudget, receive } from './body.js';
import { authErrors, checkSignature, type AcceptedKey } from './sigv4.js';

export interface LambdaEndpointOptions extends Omit<FunctionsOptions, 'defaults' | 'maxEnvironments' | 'log'> {
  /** Environment variables every function gets beneath its own (serve passes its `MICRO_*`). */
  defaults?: Record<string, string>;
  /** Execution environments per function version at once. Default 4. */
  maxEnvironments?: number;
  /** Receives every line a function writes (and Lambda's START/END/REPORT lines). */
  log?: FunctionsOptions['log'];
  /** The keys requests must be signed with (SigV4); an `invokeOnly` key may call Invoke and nothing else. */
  keys: readonly AcceptedKey[];
}

/** The path prefix of the API. */
export const LAMBDA_API_PREFIX = '/2015-03-31/';

/** The path prefix of InvokeWithResponseStream (an API version of its own). */
export const LAMBDA_STREAMING_PREFIX = '/2021-11-15/';

const STREAMING_ROUTE = /^\/2021-11-15\/functions\/([^/]+)\/response-streaming-invocations\/?$/;
const STREAMING_TYPES = new Set(['RequestResponse', 'DryRun']);
/** Lambda's largest streamed response (200 MB); past it the rest is dropped and the invocation fails. */
export const MAX_STREAMED_BYTES = 200 * 1024 * 1024;

/** Largest request body: a 50 MB zip, base64 in JSON. */
const MAX_BODY = 70 * 1024 * 1024;
/** Bytes of request bodies received and being handled at once, across requests: two of the largest. */
const MAX_RECEIVING = 2 * MAX_BODY;

const ROUTE =
  /^\/2015-03-31\/functions(?:\/([^/]+)(?:\/(configuration|code|versions|aliases|invocations)(?:\/([^/]+))?)?)?\/?$/;
const INVOCATION_TYPES = new Set(['RequestResponse', 'Event', 'DryRun']);

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** What #serve returns for a reply it wrote itself (a stream): nothing is left to send. */
const WRITTEN: Reply = { status: 0 };

/**
 * @example
 * const keys = [{ accessKeyId: 'MFNA…', secretAccessKey: '…', invokeOnly: false }];
 * const lambda = new LambdaEndpoint({ dir: '/tmp/micro-fn-lambda', keys });
 * const server = createServer((req, res) => lambda.handle(req, res)).listen(0, '127.0.0.1');
 * // new LambdaClient({ endpoint: 'http://127.0.0.1:PORT', region: 'us-east-1', credentials: keys[0] }).send(new CreateFunctionCommand({...}))
 */
export class LambdaEndpoint {
  readonly #functions: Functions;
  readonly #budget = new ReceiveBudget(MAX_RECEIVING);
  readonly #keys: ReadonlyMap<string, AcceptedKey>;

  constructor(options: LambdaEndpointOptions) {
    this.#keys = new Map(options.keys.map((k) => [k.accessKeyId, k]));
    this.#functions = new Functions({
      ...options,
      defaults: options.defaults ?? {},
      maxEnvironments: options.maxEnvironments ?? 4,
      log: options.log ?? (() => {}),
    });
  }

  /** The functions behind the API (what serve restores, and what its registry entries name). */
  get functions(): Functions {
    return this.#functions;
  }

  /** Answers one request to the API. Never throws: failures are AWS error responses. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    req.on('error', () => {});
    // 100 Continue is sent by receive(), once the body is wanted and within bounds.
    this.#authenticated(req, res).then(
      (reply) => send(res, reply),
      (err: unknown) => send(res, failure(err)),
    );
  }

  /**
   * The one check before anything runs or is read: the request's SigV4 signature (sigv4.ts). Its form, key and date
   * are checked first; then the body is read, once and within its operation's bounds (body.ts), and the signature
   * checked over it; only then is the operation served, with that body. An invoke-only key may call Invoke only.
   */
  async #authenticated(req: IncomingMessage, res: ServerResponse): Promise<Reply> {
    const signed = checkSignature(req, this.#keys);
    const operation = operationOf(req);
    if (signed.key.invokeOnly && operation !== 'InvokeFunction')
      throw authErrors.denied(
        `User: arn:aws:iam::000000000000:user/${signed.key.accessKeyId} is not authorized to perform: lambda:${operation}: its key may call Invoke only`,
      );
    const body = await receive(req, res, {
      operation,
      budget: this.#budget,
      ...(operation === 'InvokeFunction'
        ? { max: MAX_RESPONSE_BYTES, tooLarge: apiErrors.tooLarge }
        : { max: MAX_BODY }),
    });
    signed.verify(body);
    return this.#serve(req, res, body);
  }

  /** Stops every execution environment and removes the unpacked packages. */
  close(): Promise<void> {
    return this.#functions.close();
  }

  async #serve(req: IncomingMessage, res: ServerResponse, raw: Buffer): Promise<Reply> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const streaming = req.method === 'POST' ? STREAMING_ROUTE.exec(url.pathname) : null;
    if (streaming) {
      const target = functionRef(decoded(streaming[1]!));
      const given = url.searchParams.get('Qualifier') ?? undefined;
      if (given !== undefined && target.qualifier !== undefined && given !== target.qualifier)
        throw apiErrors.invalidParameter(
          'The derived qualifier from the function name does not match the specified qualifier.',
        );
      return this.#invokeStreaming(req, res, raw, target.name, given ?? target.qualifier);
    }
    const match = ROUTE.exec(url.pathname);
    const method = req.method ?? 'GET';
    const [, ref, part, sub] = match ?? [];
    const target = ref === undefined ? undefined : functionRef(decoded(ref));
    const given = url.searchParams.get('Qualifier') ?? undefined;
    if (given !== undefined && target?.qualifier !== undefined && given !== target.qualifier)
      throw apiErrors.invalidParameter(
        'The derived qualifier from the function name does not match the specified qualifier.',
      );
    const qualifier = given ?? target?.qualifier;
    const fns = this.#functions;
    if (!match) throw notImplemented(method, url.pathname);
    if (!target) {
      if (method === 'GET') return { status: 200, body: listFunctions(fns, url.searchParams) };
      if (method !== 'POST') throw notImplemented(method, url.pathname);
      const body = jsonObject(raw);
      const name = typeof body.FunctionName === 'string' ? functionRef(body.FunctionName).name : '';
      return {
        status: 201,
        body: await fns.create(
          regionOf(req),
          name,
          readSettings(body),
          zipFile(body.Code),
          flag(body.Publish, 'Publish'),
        ),
      };
    }
    const { name } = target;
    const route = `${method} ${part ?? ''}${sub === undefined ? '' : '/'}`;
    switch (route) {
      case 'GET ':
        return {
          status: 200,
          body: { Configuration: fns.get(name, qualifier), Code: { RepositoryType: 'S3' }, Tags: {} },
        };
      case 'GET configuration':
        return { status: 200, body: fns.get(name, qualifier) };
      case 'PUT code': {
        const body = jsonObject(raw);
        if (body.DryRun === true)
          throw apiErrors.invalidParameter('DryRun is not supported by the local endpoint: send the update itself');
        const architectures =
          body.Architectures === undefined
            ? undefined
            : readArchitectures(body.Architectures, fns.get(name).Architectures);
        return {
          status: 200,
          body: await fns.updateCode(name, zipFile(body), { architectures, publish: flag(body.Publish, 'Publish') }),
        };
      }
      case 'GET versions':
        return {
          status: 200,
          body: paged('Versions', fns.versions(name), url.searchParams, (c) => versionKey('', c.Version)),
        };
      case 'GET aliases': {
        const version = url.searchParams.get('FunctionVersion') ?? undefined;
        if (version !== undefined && !/^(\$LATEST|[0-9]+)$/.test(version))
          throw apiErrors.validation(
            `1 validation error detected: Value '${version}' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)`,
          );
        return { status: 200, body: paged('Aliases', fns.aliases(name, version), url.searchParams, (a) => a.Name) };
      }
      case 'GET aliases/':
        return { status: 200, body: fns.alias(name, decoded(sub!)) };
      case 'PUT configuration':
        return {
          status: 200,
          body: await fns.updateConfiguration(name, readSettings(jsonObject(raw), fns.get(name))),
        };
      case 'DELETE ':
        await fns.delete(regionOf(req), name, qualifier ?? undefined);
        return { status: 204 };
      case 'POST versions': {
        const body = jsonObject(raw);
        return {
          status: 201,
          body: await fns.publish(
            name,
            optional(body.CodeSha256, 'CodeSha256'),
            optional(body.Description, 'Description'),
          ),
        };
      }
      case 'POST aliases': {
        const body = jsonObject(raw);
        const alias = await fns.createAlias(
          name,
          required(body.Name, 'Name'),
          required(body.FunctionVersion, 'FunctionVersion'),
          optional(body.Description, 'Description'),
        );
        return { status: 201, body: alias };
      }
      case 'PUT aliases/': {
        const body = jsonObject(raw);
        return {
          status: 200,
          body: await fns.updateAlias(
            name,
            decoded(sub!),
            optional(body.FunctionVersion, 'FunctionVersion'),
            optional(body.Description, 'Description'),
          ),
        };
      }
      case 'POST invocations':
        return this.#invoke(req, raw, name, qualifier ?? undefined);
    }
    throw notImplemented(method, url.pathname);
  }

  /** Invoke: RequestResponse (200, the payload), Event (202, runs after the answer) or DryRun (204). */
  async #invoke(req: IncomingMessage, payload: Buffer, name: string, qualifier: string | undefined): Promise<Reply> {
    const type = invocationType(req, INVOCATION_TYPES);
    const text = jsonPayload(payload);
    const { config, pool } = this.#functions.invocable(name, qualifier);
    const version = { 'x-amz-executed-version': config.Version };
    if (type === 'DryRun') return { status: 204, headers: version };
    const context = header(req, 'x-amz-client-context');
    const run = pool.invoke(
      Buffer.from(text),
      randomUUID(),
      context && Buffer.from(context, 'base64').toString('utf8'),
    );
    if (type === 'Event') {
      // Lambda queues it and answers at once; a failure shows in the function's log only.
      void run.catch(() => {});
      return { status: 202, headers: version };
    }
    const { result, tail } = await run;
    const headers: Record<string, string> = { ...version };
    if (header(req, 'x-amz-log-type') === 'Tail') headers['x-amz-log-result'] = Buffer.from(tail).toString('base64');
    if ('error' in result)
      return { status: 200, headers: { ...headers, 'x-amz-function-error': 'Unhandled' }, body: result.error };
    return { status: 200, headers, body: Buffer.from(result.payload) };
  }
  /**
   * InvokeWithResponseStream: 200 and an event stream (event-stream.ts) of the function's bytes as it writes them, one
   * PayloadChunk per chunk, then InvokeComplete (ErrorCode and ErrorDetails for a function error; LogResult with
   * `LogType: Tail`). A function that does not stream its response sends it whole, as one chunk. The reply is written
   * only as fast as the caller reads it, and the function's writes wait for it (nothing is buffered here beyond a
   * chunk). A caller that goes away stops nothing, as on Lambda: the rest is read and dropped while the function runs
   * on within its timeout. DryRun: 204.
   */
  async #invokeStreaming(
    req: IncomingMessage,
    res: ServerResponse,
    payload: Buffer,
    name: string,
    qualifier: string | undefined,
  ): Promise<Reply> {
    const type = invocationType(req, STREAMING_TYPES);
    const text = jsonPayload(payload);
    const { config, pool } = this.#functions.invocable(name, qualifier);
    const version = { 'x-amz-executed-version': config.Version };
    if (type === 'DryRun') return { status: 204, headers: version };
    const context = header(req, 'x-amz-client-context');
    const { result, tail } = await pool.invokeStreaming(
      Buffer.from(text),
      randomUUID(),
      context && Buffer.from(context, 'base64').toString('utf8'),
    );
    res.writeHead(200, {
      'x-amzn-requestid': randomUUID(),
      ...version,
      'content-type': EVENT_STREAM_CONTENT_TYPE,
    });
    let error: LambdaError | undefined;
    if ('stream' in result) {
      let open = true;
      let size = 0;
      for await (const chunk of result.stream.chunks) {
        size += chunk.byteLength;
        if (size > MAX_STREAMED_BYTES) break;
        for (const message of payloadChunks(chunk)) if (open) open = await written(res, message);
        if (!open) break;
      }
      if (!open || size > MAX_STREAMED_BYTES) result.stream.discard(); // the function runs on, as on Lambda
      if (!open) return WRITTEN; // the caller went away
      error =
        size > MAX_STREAMED_BYTES
          ? {
              errorType: 'Function.ResponseSizeTooLarge',
              errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_STREAMED_BYTES} bytes).`,
            }
          : await result.stream.end;
    } else if ('error' in result) error = result.error;
    else for (const message of payloadChunks(Buffer.from(result.payload))) await written(res, message);
    const complete: InvokeComplete = error ? { ErrorCode: error.errorType, ErrorDetails: error.errorMessage } : {};
    if (header(req, 'x-amz-log-type') === 'Tail') complete.LogResult = Buffer.from(await tail).toString('base64');
    res.end(invokeComplete(complete));
    return WRITTEN;
  }
}

/** Writes one message of a streamed reply; when the socket's buffer is full, waits for it to drain. False once the caller has gone. */
function written(res: ServerResponse, message: Buffer): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(message)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      res.off('drain', drained);
      res.off('close', closed);
      resolve(ok);
    };
    const drained = done(true);
    const closed = done(false);
    res.once('drain', drained);
    res.once('close', closed);
  });
}

/** A path segment, percent-decoded; malformed percent-encoding is the caller's mistake (400), not a 500. */
function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw apiErrors.invalidParameter(`the path segment "${segment.slice(0, 64)}" is not valid percent-encoding`);
  }
}

/** A function named by name, partial ARN or ARN, with an optional `:qualifier`. */
function functionRef(text: string): { name: string; qualifier?: string } {
  const match = /^(?:arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:|\d{12}:function:)?([^:]+)(?::([^:]+))?$/.exec(
    text,
  );
  if (!match) throw apiErrors.invalidParameter(`"${text}" is not a function name or ARN`);
  return { name: match[1]!, ...(match[2] ? { qualifier: match[2] } : {}) };
}

/** The region the request was signed for (`Credential=KEY/DATE/REGION/lambda/aws4_request`); else us-east-1. */
function regionOf(req: IncomingMessage): string {
  return /Credential=[^/]+\/\d{8}\/([a-z0-9-]+)\/lambda\//.exec(req.headers.authorization ?? '')?.[1] ?? 'us-east-1';
}

function zipFile(code: unknown): Uint8Array {
  const zip = (code as { ZipFile?: unknown } | undefined)?.ZipFile;
  if (typeof zip !== 'string' || zip === '')
    throw apiErrors.invalidParameter('the local endpoint takes the code as ZipFile (no S3 object or container image)');
  return Buffer.from(zip, 'base64');
}

function required(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '')
    throw apiErrors.invalidParameter(`${field} is required and must be a string`);
  return value;
}

function optional(value: unknown, field: string): string | undefined {
  return value === undefined || value === null ? undefined : required(value, field);
}

/** A boolean field of a request body: absent is false. */
function flag(value: unknown, field: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== 'boolean') throw apiErrors.invalidContent(`${field} must be a boolean`);
  return value;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function notImplemented(method: string, path: string): LambdaApiError {
  return apiErrors.unknownOperation(
    `${method} ${path} is not part of micro-fn serve's Lambda API: CreateFunction, ListFunctions, GetFunction, GetFunctionConfiguration, UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction, PublishVersion, ListVersionsByFunction, CreateAlias, GetAlias, ListAliases, UpdateAlias and Invoke are`,
  );
}

/** The operation a request asks for, by the name of its IAM action (`lambda:<name>`) and of its size limit. */
function operationOf(req: IncomingMessage): string {
  const path = (req.url ?? '/').split('?')[0]!;
  // InvokeWithResponseStream is allowed by lambda:InvokeFunction, and bounded as Invoke is.
  if (req.method === 'POST' && STREAMING_ROUTE.test(path)) return 'InvokeFunction';
  const [, ref, part, sub] = ROUTE.exec(path) ?? [];
  const route = `${req.method ?? 'GET'} ${ref === undefined ? '-' : `${part ?? ''}${sub === undefined ? '' : '/'}`}`;
  return OPERATIONS[route] ?? 'UnknownOperation';
}

const OPERATIONS: Record<string, string> = {
  'POST -': 'CreateFunction',
  'GET -': 'ListFunctions',
  'GET versions': 'ListVersionsByFunction',
  'GET aliases': 'ListAliases',
  'GET aliases/': 'GetAlias',
  'GET ': 'GetFunction',
  'GET configuration': 'GetFunctionConfiguration',
  'PUT code': 'UpdateFunctionCode',
  'PUT configuration': 'UpdateFunctionConfiguration',
  'DELETE ': 'DeleteFunction',
  'POST versions': 'PublishVersion',
  'POST aliases': 'CreateAlias',
  'PUT aliases/': 'UpdateAlias',
  'POST invocations': 'InvokeFunction',
};

/** A request body (read at the entry) as a JSON object. */
function jsonObject(body: Buffer): Record<string, unknown> {
  try {
    const value: unknown = body.byteLength === 0 ? {} : JSON.parse(body.toString('utf8'));
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw apiErrors.invalidContent('the request body must be a JSON object');
}

function failure(err: unknown): Reply {
  const error =
    err instanceof LambdaApiError
      ? err
      : apiErrors.service(`the local Lambda endpoint failed: ${(err as Error)?.message ?? String(err)}`);
  const headers: Record<string, string> = { 'x-amzn-errortype': error.type };
  if (error.status === 429) headers['retry-after'] = '1';
  return { status: error.status, body: error.toJSON(), headers };
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply === WRITTEN) return;
  if (res.headersSent) return void res.destroy();
  const body =
    reply.body === undefined
      ? undefined
      : Buffer.isBuffer(reply.body)
        ? reply.body
        : Buffer.from(JSON.stringify(reply.body));
  res.writeHead(reply.status, {
    'x-amzn-requestid': randomUUID(),
    ...reply.headers,
    ...(body ? { 'content-type': 'application/json', 'content-length': body.byteLength } : {}),
  });
  res.end(body);
}

/** The request's `X-Amz-Invocation-Type` (default RequestResponse), one of `allowed`, as AWS checks it. */
function invocationType(req: IncomingMessage, allowed: ReadonlySet<string>): string {
  const type = header(req, 'x-amz-invocation-type') ?? 'RequestResponse';
  if (!allowed.has(type)) {
    const names = [...allowed];
    const list = `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
    throw apiErrors.invalidParameter(`X-Amz-Invocation-Type must be ${list}; got ${type}`);
  }
  return type;
}

/** An invocation's payload as JSON text (`{}` when empty); AWS's InvalidRequestContentException when it is none. */
function jsonPayload(payload: Buffer): string {
  const text = payload.byteLength === 0 ? '{}' : payload.toString('utf8');
  try {
    JSON.parse(text);
  } catch (err) {
    throw apiErrors.invalidContent(`Could not parse request body into json: ${(err as Error).message}`);
  }
  return text;
}
