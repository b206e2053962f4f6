import type { Broker, BrokerMessage } from './broker.js';
import type { Client } from './client.js';
import type { Codec } from './codec.js';
import type { Logger } from './context.js';
import { MicroError, NOT_STARTED, errors, isMicroError, toMicroError } from './errors.js';
import { Metadata, headers } from './metadata.js';
import { DeliveryContext, RequestContext } from './request-context.js';
import { HEALTH_ENDPOINT, type Router } from './router.js';
import { errorReply, type ServerRequest, type ServerResponse } from './transport.js';

export { HEALTH_ENDPOINT } from './router.js';

export interface DispatcherOptions {
  service: string;
  router: Router;
  codecs: Codec[];
  logger: Logger;
  client: Client;
  broker: Broker | undefined;
  env: Readonly<Record<string, unknown>>;
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

  constructor(options: DispatcherOptions) {
    this.#o = options;
    for (const c of options.codecs) this.#codecs.set(c.contentType, c);
  }

  #codec(contentType: string): Codec | undefined {
    const bare = (contentType || 'application/json').split(';', 1)[0]!.trim().toLowerCase();
    return this.#codecs.get(bare);
  }

  async handle(request: ServerRequest): Promise<ServerResponse> {
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

      const deadline = deadlineOf(request.metadata);
      if (deadline !== undefined && deadline <= Date.now())
        throw errors.timeout(service, 'deadline exceeded before the handler ran');
      const ctx = new RequestContext(this.#o, request.id, request.endpoint, request.metadata, deadline);
      try {
        const result = await handler(ctx, body);
        return this.#reply(request, 200, result, ctx.responseMetadata, codec);
      } finally {
        ctx.dispose();
      }
    } catch (err) {
      return this.errorResponse(request, this.#toError(err, `handler ${request.endpoint}`));
    }
  }

  /** Runs the subscriber of `message.topic`. Never throws. */
  async deliver(message: BrokerMessage, attempt: number): Promise<MessageOutcome> {
    const { service, router } = this.#o;
    try {
      const subscriber = router.subscriber(message.topic);
      if (!subscriber) throw errors.notFound(service, `no subscriber for topic ${message.topic} on service ${service}`);
      const metadata = new Metadata(message.headers);
      const codec = this.#codec(metadata.get(headers.contentType) ?? '');
      if (!codec) throw errors.badRequest(service, `unsupported content type ${metadata.get(headers.contentType)}`);
      const payload = decodeAs(codec, message.body, service);
      const ctx = new DeliveryContext(this.#o, message, attempt, metadata, deadlineOf(metadata));
      try {
        await subscriber(ctx, payload);
        return { ok: true };
      } finally {
        ctx.dispose();
      }
    } catch (err) {
      return { ok: false, error: this.#toError(err, `subscriber ${message.topic}`) };
    }
  }

  /** An error reply in wire form. */
  errorResponse(request: Pick<ServerRequest, 'id'>, error: MicroError, metadata = new Metadata()): ServerResponse {
    if (request.id) metadata.set(headers.id, request.id);
    return errorReply(error, metadata);
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

/** The deadline a request carries: `Micro-Timeout` (milliseconds left when it was sent) from now. */
function deadlineOf(metadata: Metadata): number | undefined {
  const raw = metadata.get(headers.timeout);
  const ms = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(ms) && ms > 0 ? Date.now() + ms : undefined;
}
