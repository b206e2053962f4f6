import type { Broker, BrokerMessage } from './broker.js';
import type { Client } from './client.js';
import type { Codec } from './codec.js';
import type { Context, Logger } from './context.js';
import { MicroError, NOT_STARTED, errors, isMicroError, toMicroError } from './errors.js';
import { Inflight } from './inflight.js';
import { Metadata, headers } from './metadata.js';
import { DeliveryContext, RequestContext } from './request-context.js';
import { HEALTH_ENDPOINT, type Router } from './router.js';
import { NO_STREAMS } from './build-constants.js';
import { ReplyStream, RequestMessages, iteratorOf } from './server-stream.js';
import { REQUEST_IN_STREAM, streamsReply, streamsRequest, type MessageStream, type StreamKind } from './stream.js';
import { errorReply, type ServerRequest, type ServerResponse } from './transport.js';
import { nonRecordingTracer, type Span, type SpanInfo, type SpanKind, type Tracer } from './trace.js';

/** The stream machinery; a bundle built without streams carries none of it (build-constants.ts). */
const streaming = globalThis.__MICRO_FN_NO_STREAMS__
  ? undefined
  : { ReplyStream, RequestMessages, iteratorOf, firstMessage };

export { HEALTH_ENDPOINT } from './router.js';

export interface DispatcherOptions {
  service: string;
  router: Router;
  codecs: Codec[];
  logger: Logger;
  client: Client;
  broker: Broker | undefined;
  env: Readonly<Record<string, unknown>>;
  /** Milliseconds a handler or subscriber may run; a caller's `Micro-Timeout` can only make it shorter. */
  timeout?: number;
  /** Starts each invocation's span (server or consumer), child of the `traceparent` it came with. */
  tracer?: Tracer;
}

/** A request checked and decoded: what its handler runs with. */
export interface PreparedCall {
  readonly error?: undefined;
  readonly handler: (ctx: Context, request: unknown) => Promise<unknown>;
  readonly codec: Codec;
  /** The decoded request; for a client or bidi stream, undefined (the handler reads `ServerRequest.stream`). */
  readonly body: unknown;
  /** A server stream whose request is the first message of the request's stream (REQUEST_IN_STREAM): read at run. */
  readonly bodyInStream?: true;
  /** How the endpoint streams; undefined for a plain one. */
  readonly stream?: StreamKind;
  /** Epoch milliseconds: the caller's deadline or the timeout, whichever comes first. */
  readonly deadline: number | undefined;
}

/** Outcome of one message handed to a subscriber. */
export interface MessageOutcome {
  ok: boolean;
  error?: MicroError;
}

/**
 * Decodes a request, runs the endpoint's handler chain with a context, and encodes the reply or the error.
 * Never throws: every failure becomes an error response.
 */
export class Dispatcher {
  readonly #o: DispatcherOptions;
  readonly #codecs = new Map<string, Codec>();
  readonly #inflight = new Inflight();
  readonly #tracer: Tracer;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#tracer = options.tracer ?? nonRecordingTracer();
    for (const c of options.codecs) this.#codecs.set(c.contentType, c);
  }

  #codec(contentType: string): Codec | undefined {
    // Most requests name a codec exactly (`application/json`): found without taking the header apart.
    const exact = this.#codecs.get(contentType);
    if (exact) return exact;
    const bare = (contentType || 'application/json').split(';', 1)[0]!.trim().toLowerCase();
    return this.#codecs.get(bare);
  }

  /**
   * Checks and decodes a request without running anything: the service it names, its endpoint, content type,
   * body and deadline. Either what its handler runs with, or the error that answers it (such a request never
   * reached a handler: a one-shot function keeps waiting for its invocation).
   */
  prepare(request: ServerRequest): PreparedCall | { error: MicroError } {
    const { service, router } = this.#o;
    // A probe takes the same path as a request (it is how a warm process compiles that path before its
    // invocation), with a built-in handler that no wrapper sees.
    const streamProbe = !globalThis.__MICRO_FN_NO_STREAMS__ && request.probe === 'stream';
    const probe = request.probe === true || streamProbe || request.endpoint === HEALTH_ENDPOINT;
    try {
      if (!probe && request.service && request.service !== service)
        throw errors.notFound(service, `service ${request.service} not found`);
      const handler = streamProbe ? router.healthStream : router.handler(probe ? HEALTH_ENDPOINT : request.endpoint);
      if (!handler)
        throw errors.notFound(service, `endpoint ${request.endpoint || '(none)'} not found on service ${service}`);
      const codec = this.#codec(request.contentType);
      if (!codec) throw errors.badRequest(service, `unsupported content type ${request.contentType}`);
      // Looked up for a probe too (and ignored): a warm process's probe compiles this path for its invocation.
      const kind = router.stream(probe ? HEALTH_ENDPOINT : request.endpoint);
      const stream = streamProbe ? 'server' : probe ? undefined : kind;
      if (stream && !streaming) throw new MicroError(service, 500, NO_STREAMS);
      // A bundle without streams (build-constants.ts) has none on either side: it carries none of these checks.
      let inStream = false;
      if (!globalThis.__MICRO_FN_NO_STREAMS__) {
        if (stream && codec.contentType !== 'application/json')
          throw new MicroError(
            service,
            415,
            `${request.endpoint} streams, and streams are JSON: send application/json`,
          );
        if (streamsRequest(stream) && !request.stream)
          throw errors.badRequest(
            service,
            `${request.endpoint} takes a ${stream} stream: send its messages as one JSON value per line (Content-Type: application/x-ndjson)`,
          );
        // A server stream's one request may come as the first message of a request stream (a WebSocket's first frame).
        inStream = stream === 'server' && !!request.stream && request.metadata.has(REQUEST_IN_STREAM);
        if (request.stream && !streamsRequest(stream) && !inStream)
          throw errors.badRequest(
            service,
            `${request.endpoint} takes no request stream: send its request as one ${codec.contentType} body`,
          );
      }
      const body =
        !globalThis.__MICRO_FN_NO_STREAMS__ && (streamsRequest(stream) || inStream)
          ? undefined
          : decodeAs(codec, request.body, service);
      const deadline = this.#deadline(request.metadata);
      if (deadline !== undefined && deadline <= Date.now())
        throw errors.timeout(service, 'deadline exceeded before the handler ran');
      if (globalThis.__MICRO_FN_NO_STREAMS__ || !stream) return { handler, codec, body, deadline };
      return inStream
        ? { handler, codec, body, deadline, stream, bodyInStream: true }
        : { handler, codec, body, deadline, stream };
    } catch (err) {
      return { error: this.#toError(err, `handler ${request.endpoint}`) };
    }
  }

  /**
   * Runs a prepared request's handler chain and encodes its reply or error. Past the deadline the caller is
   * answered 408 at once and the handler's `ctx.signal` fires; the handler is no longer waited for (`settle`).
   * Never throws.
   */
  async run(request: ServerRequest, call: PreparedCall): Promise<ServerResponse> {
    // The constant before each stream branch: the minifier then drops it, and what only it uses (build-constants.ts).
    if (!globalThis.__MICRO_FN_NO_STREAMS__ && streamsReply(call.stream)) return this.#runStream(request, call);
    const ctx = new RequestContext(this.#o, request.id, request.endpoint, request.metadata, call.deadline);
    // A probe is no invocation: it records no span, yet takes the path (a warm process compiles it so).
    const probe = request.probe === true || request.endpoint === HEALTH_ENDPOINT;
    // Asked first: a tracer that records nothing (the default) costs no span information per request; a bundle
    // without an exporter records none (build-constants.ts).
    const span =
      !globalThis.__MICRO_FN_NO_EXPORTER__ && this.#tracer.recording
        ? this.#span(request.endpoint, 'server', request.metadata, probe, {
            id: request.id,
            endpoint: request.endpoint,
          })
        : undefined;
    ctx.span = span;
    // A client stream: the handler reads the request's messages; what it leaves unread is cancelled once it returns.
    const input =
      !globalThis.__MICRO_FN_NO_STREAMS__ && streamsRequest(call.stream)
        ? new streaming!.RequestMessages(request.stream!, call.codec, this.#o.service)
        : undefined;
    let response: ServerResponse;
    try {
      const result = await this.#inflight.bound(ctx, call.handler(ctx, input ?? call.body), call.deadline, () =>
        errors.timeout(this.#o.service, `${request.endpoint} did not finish before its deadline`),
      );
      const trailers = ctx.setTrailers;
      response = this.#reply(
        request,
        result,
        trailers ? ctx.responseMetadata.merge(trailers) : ctx.responseMetadata,
        call.codec,
      );
    } catch (err) {
      response = this.errorResponse(request, this.#toError(err, `handler ${request.endpoint}`));
    }
    void input?.close();
    span?.end(response.status, response.error);
    return response;
  }

  /**
   * A server or bidi stream: runs the handler and pulls its first item before answering, so metadata set before the
   * first `yield` goes with the reply, and an error before it is a plain error reply. The rest is pulled as the
   * transport reads. The deadline (and a stop) bound the whole stream: past it, it ends with a 408 and the handler's
   * signal fires. The span ends when the stream does.
   */
  async #runStream(request: ServerRequest, call: PreparedCall): Promise<ServerResponse> {
    const { service } = this.#o;
    // Never reached in a bundle without streams (prepare refuses a stream there): it carries none of this.
    if (globalThis.__MICRO_FN_NO_STREAMS__)
      return this.errorResponse(request, new MicroError(service, 500, NO_STREAMS));
    const ctx = new RequestContext(this.#o, request.id, request.endpoint, request.metadata, call.deadline);
    const span = this.#span(request.endpoint, 'server', request.metadata, request.probe === 'stream', {
      id: request.id,
      endpoint: request.endpoint,
    });
    ctx.span = span;
    const input = streamsRequest(call.stream)
      ? new streaming!.RequestMessages(request.stream!, call.codec, service)
      : undefined;
    const toError = (err: unknown) => this.#toError(err, `handler ${request.endpoint}`);
    // The whole stream is one run of Inflight: it settles once the handler's generator has finished.
    let release!: () => void;
    const whole = new Promise<void>((resolve) => (release = resolve));
    let reply: ReplyStream | undefined;
    let cutError: MicroError | undefined;
    let interruptStart: ((error: MicroError) => void) | undefined;
    this.#inflight
      .bound(ctx, whole, call.deadline, () =>
        errors.timeout(service, `${request.endpoint} did not finish its stream before its deadline`),
      )
      .catch((error: MicroError) => {
        cutError = error;
        if (reply) reply.cut(error);
        else interruptStart?.(error);
      });
    // A caller that goes before the stream has ended (its connection closed) cancels it, its first item included.
    const gone = request.caller?.onGone(() => {
      const error = new MicroError(service, 499, `the caller of ${request.endpoint} went away`);
      if (reply) return void reply.return();
      ctx.abort(error);
      cutError ??= error;
      interruptStart?.(error);
    });
    const race = <T>(work: Promise<T>) =>
      new Promise<T>((resolve, reject) => {
        if (cutError) return reject(cutError);
        interruptStart = reject;
        work.then(resolve, reject);
      });
    let iterator: AsyncIterator<unknown> | undefined;
    try {
      const body = call.bodyInStream
        ? await race(streaming!.firstMessage(request.stream!, call.codec, service))
        : call.body;
      const started = call.handler(ctx, input ?? body);
      const result = await race(started);
      iterator = streaming!.iteratorOf(result);
      if (!iterator)
        throw errors.internal(
          service,
          `${request.endpoint} streams its reply, yet its handler returned no async iterable`,
        );
      const first = await race(iterator.next().catch((err: unknown) => Promise.reject(toError(err))));
      interruptStart = undefined;
      reply = new streaming!.ReplyStream({
        iterator,
        first,
        codec: call.codec,
        trailers: () => ctx.setTrailers,
        toError,
        abort: (reason) => ctx.abort(reason),
        cancelled: () => new MicroError(service, 499, `the caller stopped reading the stream of ${request.endpoint}`),
        finished: (error) => {
          gone?.();
          void input?.close();
          span?.end(error?.code ?? 200, error);
        },
        released: release,
      });
      if (first.done) await reply.next();
      if (cutError) reply.cut(cutError);
      const metadata = ctx.responseMetadata;
      if (request.id) metadata.set(headers.id, request.id);
      return { status: 200, contentType: call.codec.contentType, body: new Uint8Array(0), metadata, stream: reply };
    } catch (err) {
      gone?.();
      const error = toError(err);
      void input?.close();
      // A generator left mid-way (cut before its first item) runs its `finally` blocks; the run settles after it.
      Promise.resolve(cutError ? iterator?.return?.() : undefined)
        .catch(() => {})
        .finally(release);
      const response = this.errorResponse(request, error);
      span?.end(response.status, response.error);
      return response;
    }
  }

  /** The span of one invocation, child of the context its metadata carries (none for a probe); see Tracer.start. */
  #span(name: string, kind: SpanKind, metadata: Metadata, probe: boolean, info: SpanInfo): Span | undefined {
    if (globalThis.__MICRO_FN_NO_EXPORTER__) return undefined; // nothing records there (build-constants.ts)
    const tracer = this.#tracer;
    if (probe || !tracer.recording) return undefined;
    return tracer.start(name, kind, metadata, { function: this.#o.service, service: this.#o.service, ...info });
  }

  /** prepare, then run. Never throws: every failure is an error response. */
  async handle(request: ServerRequest): Promise<ServerResponse> {
    const call = this.prepare(request);
    if (call.error) return this.errorResponse(request, call.error);
    return this.run(request, call);
  }

  /**
   * Stops what runs: every handler's and subscriber's signal fires with `error` now; one still running `grace` ms
   * later is no longer waited for, and its caller gets `error` (a message fails with it, and is redelivered).
   */
  interrupt(error: MicroError, grace: number): void {
    this.#inflight.interrupt(error, grace);
  }

  /** Waits at most `ms` for handlers that are no longer waited for (past their deadline, interrupted) to finish. */
  settle(ms: number): Promise<void> {
    return this.#inflight.settle(ms);
  }

  /** Runs the subscriber of `message.topic`. Never throws. */
  async deliver(message: BrokerMessage, attempt: number): Promise<MessageOutcome> {
    const { service, router } = this.#o;
    let span: Span | undefined;
    try {
      // A bundle of a function with no subscriber (build-constants.ts) carries no more of this than the refusal.
      const subscriber = globalThis.__MICRO_FN_NO_SUBSCRIBERS__ ? undefined : router.subscriber(message.topic);
      if (!globalThis.__MICRO_FN_NO_SUBSCRIBERS__ && subscriber) {
        const metadata = new Metadata(message.headers);
        const codec = this.#codec(metadata.get(headers.contentType) ?? '');
        if (!codec) throw errors.badRequest(service, `unsupported content type ${metadata.get(headers.contentType)}`);
        const payload = decodeAs(codec, message.body, service);
        const deadline = this.#deadline(metadata);
        const ctx = new DeliveryContext(this.#o, message, attempt, metadata, deadline);
        span = this.#span(`${message.topic} process`, 'consumer', metadata, false, {
          id: message.id,
          topic: message.topic,
          attempt,
        });
        ctx.span = span;
        await this.#inflight.bound(ctx, subscriber(ctx, payload), deadline, () =>
          errors.timeout(service, `the subscriber of ${message.topic} did not finish before its deadline`),
        );
        span?.end();
        return { ok: true };
      }
      throw errors.notFound(service, `no subscriber for topic ${message.topic} on service ${service}`);
    } catch (err) {
      const error = this.#toError(err, `subscriber ${message.topic}`);
      // Said before the message is nakked (redelivered, then dead-lettered), on every target: a platform's own log
      // (Workers, Lambda SQS) shows only that the message came again, never why.
      this.#o.logger.error(`the subscriber of ${message.topic} failed (attempt ${attempt}): ${error.detail}`, {
        code: error.code,
        id: message.id,
      });
      span?.end(error.code, error);
      return { ok: false, error };
    }
  }

  /** An error reply in wire form. */
  errorResponse(request: Pick<ServerRequest, 'id'>, error: MicroError, metadata = new Metadata()): ServerResponse {
    if (request.id) metadata.set(headers.id, request.id);
    return errorReply(error, metadata);
  }

  /** The earlier of the caller's deadline and the timeout, from now; undefined when neither is set. */
  #deadline(metadata: Metadata): number | undefined {
    const asked = timeoutOf(metadata);
    const own = this.#o.timeout;
    const ms = asked === undefined ? own : own === undefined ? asked : Math.min(asked, own);
    return ms === undefined ? undefined : Date.now() + ms;
  }

  #toError(err: unknown, where: string): MicroError {
    const error = toMicroError(err, this.#o.service);
    // A thrown non-MicroError is a bug: its stack goes to the log, never to the caller.
    if (!isMicroError(err)) this.#o.logger.error(`${where} failed`, { error: err });
    // Once a handler has run, nothing it throws may say "not started" (a refusal it got from a call it made and
    // passed on, say): the caller would send the request again and run this handler twice.
    if (error.id === NOT_STARTED)
      return new MicroError(this.#o.service, error.code, error.detail, { retryable: false, cause: error });
    return error;
  }

  /** A handler's reply in wire form. */
  #reply(request: ServerRequest, value: unknown, metadata: Metadata, codec: Codec): ServerResponse {
    if (request.id) metadata.set(headers.id, request.id);
    return { status: 200, contentType: codec.contentType, body: codec.encode(value), metadata };
  }
}

/** The first message of `stream`, decoded: a server stream's request sent as a request stream. Reads no more of it. */
async function firstMessage(stream: MessageStream, codec: Codec, service: string): Promise<unknown> {
  const it = stream[Symbol.asyncIterator]();
  try {
    const r = await it.next();
    if (r.done) throw errors.badRequest(service, 'the request stream ended before its first message (the request)');
    return decodeAs(codec, r.value, service);
  } finally {
    void Promise.resolve(it.return?.()).catch(() => {});
  }
}

function decodeAs(codec: Codec, body: Uint8Array, service: string): unknown {
  try {
    return codec.decode(body);
  } catch (err) {
    if (isMicroError(err)) throw errors.badRequest(service, err.detail, { cause: err });
    throw errors.badRequest(service, `could not decode the request as ${codec.contentType}`, { cause: err });
  }
}

/** The milliseconds a request's caller waits: `Micro-Timeout` (what was left when it was sent). */
function timeoutOf(metadata: Metadata): number | undefined {
  const raw = metadata.get(headers.timeout);
  const ms = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}
