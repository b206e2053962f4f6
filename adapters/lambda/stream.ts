/**
 * Lambda response streaming, for a function with a server-stream endpoint: its handler is wrapped in
 * `awslambda.streamifyResponse` (a global the runtime interface client and Lambda's Node.js runtime provide) and
 * writes every reply to the response stream Lambda gives it, as the reply is made.
 *
 * - A direct invocation of a stream endpoint (InvokeWithResponseStream, or Invoke, which buffers it) is NDJSON, one
 *   JSON object a line: `{"metadata":{…}}` (what the handler set before its first message), `{"body":<message>}` per
 *   message as it is yielded, and last `{"trailers":{…}}`, or `{"error":<error JSON>,"trailers":{…}}` for an error in
 *   the middle, after which the handler fails so that Lambda reports it as the invocation's error (the runtime's
 *   error trailers: InvokeComplete's ErrorCode and ErrorDetails). An error before the first message is one line,
 *   `{"error":…,"metadata":…}`, as a plain endpoint's error reply is.
 * - A Function URL request (RESPONSE_STREAM mode): the HTTP prelude (status and headers of the fetch handler's
 *   Response) through `awslambda.HttpResponseStream.from`, then its body as it comes.
 * - Anything else (a plain endpoint, a message, an SQS batch, an API Gateway request) is answered as the plain
 *   handler answers it, its result written whole: Lambda hands a plain Invoke the streamed bytes as its payload.
 *
 * Every write waits for the response stream to drain before the next message is asked for (backpressure); a write
 * that fails (the stream was cut) stops the stream, which cancels the handler (its `ctx.signal`, its `return()`).
 */
import { errors, type Env, type ErrorJSON, type Runner, type ServiceDefinition } from '../../runtime/index.js';
import { Router } from '../../runtime/core/router.js';
import { STREAM_METADATA, streamsReply, type StreamKind } from '../../runtime/core/stream.js';
import { directRequest, messageFailed } from './direct.js';
import { isDirectEvent, isHttpEvent, type APIGatewayProxyEventV2, type Context } from './events.js';
import { toRequest } from './http.js';
import { handlerBudget } from './deadline.js';
import { handlerParts, type LambdaHandler } from './handler.js';
import type { FetchHandler } from '../../runtime/plugins/http/fetch.js';

/** The response stream Lambda hands a streamified handler (the part of a Node Writable micro-fn uses). */
export interface ResponseStream {
  write(chunk: Uint8Array | string): boolean;
  end(): void;
  setContentType(type: string): void;
  once(event: 'drain' | 'close' | 'error' | 'finish', listener: () => void): unknown;
  off(event: 'drain' | 'close' | 'error' | 'finish', listener: () => void): unknown;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
}

/** A streamified handler: Lambda passes the response stream and awaits the promise. */
export type StreamingLambdaHandler = (event: unknown, stream: ResponseStream, context: Context) => Promise<void>;

/** What the runtime provides as the global `awslambda` (the part micro-fn uses). */
interface AwsLambdaGlobal {
  streamifyResponse(handler: StreamingLambdaHandler): StreamingLambdaHandler;
  HttpResponseStream: { from(stream: ResponseStream, prelude: Record<string, unknown>): ResponseStream };
}

/** The runtime's `awslambda` global, when there is one (Lambda's Node.js runtime, the RIC). */
function awsLambdaGlobal(): AwsLambdaGlobal | undefined {
  // Platform seam: a global the runtime defines before it loads the handler.
  return (globalThis as { awslambda?: AwsLambdaGlobal }).awslambda;
}

/** Whether any endpoint of `definition` streams its reply (server or bidi). */
export function streamsReplies(definition: ServiceDefinition): boolean {
  return new Router(definition).endpoints().some((e) => streamsReply(e.metadata[STREAM_METADATA] as StreamKind));
}

const NDJSON = 'application/x-ndjson';
const encoder = new TextEncoder();

/**
 * The handler of a function with a server stream (`micro-fn build --target lambda` bundles this entry for one, and
 * createHandler for the others, which then carry none of this file): streamified when the runtime provides
 * `awslambda` (Lambda's Node.js runtime, the RIC) and the definition streams a reply; else createHandler's.
 * @example
 * // the entry `micro-fn build --target lambda` bundles for a function with an `async *Count` endpoint
 * import countdown from './index.ts';
 * export const handler = createStreamingHandler(countdown);
 */
export function createStreamingHandler(
  definition: ServiceDefinition,
  env: Env = process.env,
): LambdaHandler | StreamingLambdaHandler {
  const { runner, fetch, answer } = handlerParts(definition, env);
  const awslambda = awsLambdaGlobal();
  if (!awslambda || !streamsReplies(definition)) return answer;
  return streamingHandler(runner, definition, fetch, answer, awslambda);
}

/**
 * The streamified handler: stream endpoints and Function URL requests stream; `answer` (the plain handler) answers
 * every other event, its result written whole.
 */
function streamingHandler(
  runner: Runner,
  definition: ServiceDefinition,
  fetch: FetchHandler,
  answer: LambdaHandler,
  awslambda: AwsLambdaGlobal,
): StreamingLambdaHandler {
  const router = new Router(definition);
  return awslambda.streamifyResponse(async (event, stream, context) => {
    // A streamed response's context waits for an empty event loop before the next event by default; the host's
    // plugins (a NATS connection, say) keep it busy on purpose, so the environment would never take another event.
    context.callbackWaitsForEmptyEventLoop = false;
    if (isDirectEvent(event) && event.endpoint !== undefined && streamsReply(router.stream(event.endpoint)))
      return directStream(runner, event.endpoint, directRequest(event, context, runner), stream);
    if (isHttpEvent(event) && isFunctionUrl(event)) {
      const response = await fetch(toRequest(event, context), { remainingMs: handlerBudget(context) });
      return httpStream(response, stream, awslambda);
    }
    const result = await answer(event, context);
    stream.setContentType('application/json');
    await write(stream, JSON.stringify(result ?? null));
    await end(stream);
  });
}

/** A Function URL's event (its domain is `<id>.lambda-url.<region>.on.aws`); an API Gateway integration buffers. */
function isFunctionUrl(event: APIGatewayProxyEventV2): boolean {
  const domain = (event.requestContext as { domainName?: unknown }).domainName;
  return typeof domain === 'string' && domain.includes('.lambda-url.');
}

async function directStream(
  runner: Runner,
  endpoint: string,
  request: ReturnType<typeof directRequest>,
  stream: ResponseStream,
): Promise<void> {
  stream.setContentType(NDJSON);
  let failure: ErrorJSON | undefined;
  await runner.invoke(request, async (response) => {
    const metadata = response.metadata.toJSON();
    if (!response.stream) {
      const error = response.error ?? errors.internal(runner.name, `${endpoint} answered without a stream`);
      return void (await write(stream, line({ error: error.toJSON(), metadata })));
    }
    const messages = response.stream[Symbol.asyncIterator]();
    let open = await write(stream, line({ metadata }));
    try {
      while (open) {
        const next = await messages.next();
        if (next.done) break;
        open = await write(stream, bodyLine(next.value));
      }
    } catch {
      // the stream's error: its end says it
    }
    if (!open) return void (await messages.return?.()); // cut: cancels the handler
    const { error, trailers } = await response.stream.end;
    failure = error?.toJSON();
    await write(
      stream,
      line(failure ? { error: failure, trailers: trailers.toJSON() } : { trailers: trailers.toJSON() }),
    );
  });
  // Thrown before the end, so the runtime ends the response with its error trailers (InvokeComplete's ErrorCode).
  if (failure) throw messageFailed({ toJSON: () => failure! });
  await end(stream);
}

async function httpStream(response: Response, stream: ResponseStream, awslambda: AwsLambdaGlobal): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [key, value] of response.headers) if (key !== 'set-cookie') headers[key] = value;
  const cookies = response.headers.getSetCookie();
  const out = awslambda.HttpResponseStream.from(stream, {
    statusCode: response.status,
    headers,
    ...(cookies.length > 0 ? { cookies } : {}),
  });
  const reader = response.body?.getReader();
  // The prelude goes with the first write: an empty body still needs one to send it.
  if (!reader) await write(out, new Uint8Array(0));
  for (let open = true; reader && open;) {
    const next = await reader.read();
    if (next.done) break;
    open = await write(out, next.value);
    if (!open) await reader.cancel(); // cut: cancels the stream behind the body
  }
  await end(out);
}

/** One line of the direct stream: `{"body":<message>}`, the message's JSON as it was encoded (not parsed again). */
function bodyLine(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(message.byteLength + 10);
  out.set(encoder.encode('{"body":'), 0);
  out.set(message, 8);
  out.set(encoder.encode('}\n'), message.byteLength + 8);
  return out;
}

function line(value: unknown): Uint8Array {
  return encoder.encode(`${JSON.stringify(value)}\n`);
}

/**
 * Writes `chunk`; when the stream's buffer is full, waits for it to drain. False once the stream was cut (destroyed,
 * or failed while waiting): nothing more can reach the caller.
 */
function write(stream: ResponseStream, chunk: Uint8Array | string): Promise<boolean> {
  if (stream.destroyed) return Promise.resolve(false);
  if (stream.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      stream.off('drain', drained);
      stream.off('close', cut);
      stream.off('error', cut);
      resolve(ok);
    };
    const drained = done(true);
    const cut = done(false);
    stream.once('drain', drained);
    stream.once('close', cut);
    stream.once('error', cut);
  });
}

/** Ends the response and waits until it is handed over (the runtime then reports the invocation done). */
function end(stream: ResponseStream): Promise<void> {
  if (stream.destroyed || stream.writableFinished) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('finish', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.once('finish', done);
    stream.once('close', done);
    stream.once('error', done);
    stream.end();
  });
}
