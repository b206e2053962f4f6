import type { Broker, BrokerMessage } from './broker.js';
import type { Client } from './client.js';
import type { Codec } from './codec.js';
import type { Context, Logger, MessageContext } from './context.js';
import { errors, isMicroError, toMicroError, type MicroError } from './errors.js';
import { Metadata, PROPAGATED, headers } from './metadata.js';
import type { Router } from './router.js';
import type { ServerRequest, ServerResponse } from './transport.js';

/** The endpoint a health probe asks for. It never uses up a one-shot function's invocation. */
export const HEALTH_ENDPOINT = 'Debug.Health';

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

const NO_SIGNAL = new AbortController().signal;

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
    const responseMetadata = new Metadata();
    if (request.probe || request.endpoint === HEALTH_ENDPOINT) return this.#reply(request, 200, { status: 'ok' }, responseMetadata);
    try {
      if (request.service && request.service !== service) throw errors.notFound(service, `service ${request.service} not found`);
      const handler = router.handler(request.endpoint);
      if (!handler) throw errors.notFound(service, `endpoint ${request.endpoint || '(none)'} not found on service ${service}`);
      const codec = this.#codec(request.contentType);
      if (!codec) throw errors.badRequest(service, `unsupported content type ${request.contentType}`);
      const body = decodeAs(codec, request.body, service);

      const { deadline, signal, cancel } = deadlineOf(request.metadata);
      if (deadline !== undefined && deadline <= Date.now()) throw errors.timeout(service, 'deadline exceeded before the handler ran');
      try {
        const ctx: Context = {
          id: request.id,
          service,
          endpoint: request.endpoint,
          metadata: request.metadata,
          responseMetadata,
          deadline,
          signal,
          logger: this.#o.logger,
          client: this.#childClient(request.metadata, deadline),
          broker: this.#o.broker,
          env: this.#o.env,
        };
        const result = await handler(ctx, body);
        return this.#reply(request, 200, result, responseMetadata, codec);
      } finally {
        cancel();
      }
    } catch (err) {
      return this.errorResponse(request, this.#toError(err, `handler ${request.endpoint}`), responseMetadata);
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
      const { deadline, signal, cancel } = deadlineOf(metadata);
      try {
        const ctx: MessageContext = {
          id: message.id,
          service,
          topic: message.topic,
          message,
          attempt,
          metadata,
          deadline,
          signal,
          logger: this.#o.logger,
          client: this.#childClient(metadata, deadline),
          broker: this.#o.broker,
          env: this.#o.env,
        };
        await subscriber(ctx, payload);
        return { ok: true };
      } finally {
        cancel();
      }
    } catch (err) {
      return { ok: false, error: this.#toError(err, `subscriber ${message.topic}`) };
    }
  }

  /** An error reply in wire form. */
  errorResponse(request: Pick<ServerRequest, 'id'>, error: MicroError, metadata = new Metadata()): ServerResponse {
    const body = new TextEncoder().encode(JSON.stringify(error));
    if (request.id) metadata.set(headers.id, request.id);
    return { status: error.code, contentType: 'application/json', body, metadata, error };
  }

  #toError(err: unknown, where: string): MicroError {
    const error = toMicroError(err, this.#o.service);
    // A thrown non-MicroError is a bug: its stack goes to the log, never to the caller.
    if (!isMicroError(err)) this.#o.logger.error(`${where} failed`, { error: err });
    return error;
  }

  #reply(request: ServerRequest, status: number, value: unknown, metadata: Metadata, codec: Codec = this.#codec('')!): ServerResponse {
    if (request.id) metadata.set(headers.id, request.id);
    return { status, contentType: codec.contentType, body: codec.encode(value), metadata };
  }

  #childClient(incoming: Metadata, deadline: number | undefined): Client {
    const carry = new Metadata();
    for (const key of PROPAGATED) {
      const value = incoming.get(key);
      if (value !== undefined) carry.set(key, value);
    }
    return this.#o.client.with({ metadata: carry, deadline });
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

/** The deadline a request carries (`Micro-Timeout`, relative ms) and a signal that aborts at it. */
function deadlineOf(metadata: Metadata): { deadline: number | undefined; signal: AbortSignal; cancel: () => void } {
  const raw = metadata.get(headers.timeout);
  const ms = raw === undefined ? NaN : Number(raw);
  if (!Number.isFinite(ms) || ms <= 0) return { deadline: undefined, signal: NO_SIGNAL, cancel: () => {} };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(errors.timeout('micro-fn', 'deadline exceeded')), ms);
  return { deadline: Date.now() + ms, signal: controller.signal, cancel: () => clearTimeout(timer) };
}
