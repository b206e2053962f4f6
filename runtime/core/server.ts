import type { Broker, BrokerMessage } from './broker.js';
import type { Client } from './client.js';
import type { Codec } from './codec.js';
import type { Context, Logger } from './context.js';
import { MicroError, NOT_STARTED, errors, isMicroError, toMicroError } from './errors.js';
import { Inflight } from './inflight.js';
import { Metadata, headers } from './metadata.js';
import { DeliveryContext, RequestContext } from './request-context.js';
import { HEALTH_ENDPOINT, type Router } from './router.js';
import { errorReply, type ServerRequest, type ServerResponse } from './transport.js';
import { nonRecordingTracer, type Span, type SpanInfo, type SpanKind, type Tracer } from './trace.js';

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
  readonly body: unknown;
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
    const probe = request.probe === true || request.endpoint === HEALTH_ENDPOINT;
    try {
      if (!probe && request.service && request.service !== service)
        throw errors.notFound(service, `service ${request.service} not found`);
      const handler = router.handler(probe ? HEALTH_ENDPOINT : request.endpoint);
      if (!handler)
        throw errors.notFound(service, `endpoint ${request.endpoint || '(none)'} not found on service ${service}`);
      const codec = this.#codec(request.contentType);
      if (!codec) throw errors.badRequest(service, `unsupported content type ${request.contentType}`);
      const body = decodeAs(codec, request.body, service);
      const deadline = this.#deadline(request.metadata);
      if (deadline !== undefined && deadline <= Date.now())
        throw errors.timeout(service, 'deadline exceeded before the handler ran');
      return { handler, codec, body, deadline };
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
    const ctx = new RequestContext(this.#o, request.id, request.endpoint, request.metadata, call.deadline);
    // A probe is no invocation: it records no span, yet takes the path (a warm process compiles it so).
    const probe = request.probe === true || request.endpoint === HEALTH_ENDPOINT;
    const span = this.#span(request.endpoint, 'server', request.metadata, probe, {
      id: request.id,
      endpoint: request.endpoint,
    });
    ctx.span = span;
    let response: ServerResponse;
    try {
      const result = await this.#inflight.bound(ctx, call.handler(ctx, call.body), call.deadline, () =>
        errors.timeout(this.#o.service, `${request.endpoint} did not finish before its deadline`),
      );
      response = this.#reply(request, 200, result, ctx.responseMetadata, call.codec);
    } catch (err) {
      response = this.errorResponse(request, this.#toError(err, `handler ${request.endpoint}`));
    }
    span?.end(response.status, response.error);
    return response;
  }

  /** The span of one invocation, child of the context its metadata carries (none for a probe); see Tracer.start. */
  #span(name: string, kind: SpanKind, metadata: Metadata, probe: boolean, info: SpanInfo): Span | undefined {
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
      const subscriber = router.subscriber(message.topic);
      if (!subscriber) throw errors.notFound(service, `no subscriber for topic ${message.topic} on service ${service}`);
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

  #reply(
    request: ServerRequest,
    status: number,
    value: unknown,
    metadata: Metadata,
    codec: Codec = this.#codec('')!,
  ): ServerResponse {
    if (request.id) metadata.set(headers.id, request.id);
    return { status, contentType: codec.contentType, body: codec.encode(value), metadata };
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
