import type { BrokerMessage, Delivery } from './broker.js';
import { UserError, errors, notStarted, type MicroError } from './errors.js';
import type { ServiceDefinition } from './router.js';
import { HEALTH_ENDPOINT, type MessageOutcome } from './server.js';
import { Service, type ServiceOptions } from './service.js';
import type { MessageStream } from './stream.js';
import type { Reply, ServerRequest, ServerResponse } from './transport.js';

/** How a function ended. */
export type FunctionOutcome =
  | { kind: 'request'; endpoint: string; ok: boolean; error?: MicroError }
  | { kind: 'message'; topic: string; ok: boolean; error?: MicroError }
  /** Nothing arrived before the idle timeout. */
  | { kind: 'idle'; ok: true }
  /** `stop()` was called before anything arrived. */
  | { kind: 'stopped'; ok: true };

export interface FunctionOptions extends ServiceOptions {
  /**
   * Milliseconds to wait for the invocation; then the function ends cleanly with `kind: 'idle'`. 0/absent: wait
   * forever. Not in a bundle for a host that hands the function its invocation (build-constants.ts): it never waits.
   */
  idleTimeout?: number;
  /**
   * Milliseconds a handler is given to wind down after its `ctx.signal` fired (its deadline passed, or `stop()`
   * was called while it ran) before the function stops without it. Default DEFAULT_GRACE.
   */
  grace?: number;
}

/** A handler's time to wind down once its signal has fired: 1 s. */
export const DEFAULT_GRACE = 1000;

/**
 * A one-shot function's registry entry lives seconds, not a minute: a killed instance's node is gone soon. It is
 * refreshed while the function waits and no longer once its invocation has arrived. `MICRO_REGISTER_TTL` and
 * `MICRO_REGISTER_INTERVAL` (or the ttl/interval options) override it.
 */
export const ONE_SHOT_REGISTRATION = { ttl: 6, interval: 2 } as const;

type State = 'new' | 'waiting' | 'serving' | 'finishing' | 'done';

const noReply: Reply = async () => {};

/**
 * A one-shot function (go-micro's `micro.Function`, made strict): it accepts exactly one invocation, an RPC
 * request or a broker message, runs the handler, delivers the reply or settles the message, then
 * deregisters, closes and resolves `done`.
 *
 * - A second invocation is refused with a retryable 503 (a message is nakked at once, not taken): never
 *   served, never dropped.
 * - Health probes (`Debug.Health`) are answered without using the invocation up.
 * - A handler error reaches the caller as error JSON and still ends the function; a failed message is
 *   nakked so the broker redelivers it.
 * @example
 * const fn = createFunction(helloworld, { registry, transport: createHttpTransport() });
 * await fn.start();
 * const outcome = await fn.done; // { kind: 'request', endpoint: 'Greeter.Hello', ok: true }
 */
export class MicroFunction {
  readonly service: Service;
  /** Resolves once the function has served (or given up), deregistered and closed. */
  readonly done: Promise<FunctionOutcome>;
  readonly #idleTimeout: number;
  readonly #grace: number;
  #resolve!: (outcome: FunctionOutcome) => void;
  #state: State = 'new';
  #started: Promise<void> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(definition: ServiceDefinition, options: FunctionOptions = {}) {
    // Where the platform hands it its invocations (build-constants.ts), it neither registers nor subscribes.
    this.service = new Service(
      definition,
      globalThis.__MICRO_FN_NO_LISTENER__
        ? options
        : { ...options, ...registration(options), subscribe: { ...options.subscribe, max: 1 } },
    );
    if (!globalThis.__MICRO_FN_NO_LISTENER__)
      this.service.setGate({
        onRequest: (request, reply) => this.#onRequest(request, reply),
        onDelivery: (delivery) => this.#onDelivery(delivery),
      });
    this.#idleTimeout = options.idleTimeout ?? 0;
    this.#grace = options.grace ?? DEFAULT_GRACE;
    this.done = new Promise((resolve) => (this.#resolve = resolve));
  }

  get name(): string {
    return this.service.name;
  }

  /** True until the invocation has arrived. */
  get waiting(): boolean {
    return this.#state === 'waiting';
  }

  /** Starts listening/subscribing (as the options allow) and waits for the one invocation. */
  start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`function ${this.name} was already started`);
    // Accept from now on: a message may arrive while later topics are still being subscribed.
    this.#state = 'waiting';
    this.#started = this.service.start().then(() => {
      // Where the platform hands it its invocation (build-constants.ts), a function never waits for one.
      if (!globalThis.__MICRO_FN_NO_LISTENER__ && this.#idleTimeout > 0 && this.#state === 'waiting') {
        this.#idleTimer = setTimeout(() => {
          if (this.#state === 'waiting') void this.#finish({ kind: 'idle', ok: true });
        }, this.#idleTimeout);
      }
    });
    return this.#started;
  }

  /**
   * Hands the function its invocation directly (IPC, a Lambda event, a Worker's fetch). `reply` is awaited
   * before the function stops; adapters whose platform sends the reply after return leave it out.
   */
  async invoke(request: ServerRequest, reply: Reply = noReply): Promise<ServerResponse> {
    let response!: ServerResponse;
    // Without `reply`, the platform reads a streamed reply after this returns: it is returned at once, and the
    // function ends once the stream has. A bundle without streams (build-constants.ts) has none of this.
    let early: ((r: ServerResponse) => void) | undefined;
    const handed = globalThis.__MICRO_FN_NO_STREAMS__
      ? undefined
      : new Promise<ServerResponse>((resolve) => (early = resolve));
    const served = this.#onRequest(request, async (r) => {
      response = r;
      if (!globalThis.__MICRO_FN_NO_STREAMS__ && r.stream && reply === noReply) {
        early?.(r);
        await r.stream.end;
      } else await reply(r);
    });
    await (handed ? Promise.race([served, handed]) : served);
    return response;
  }

  /** Hands the function one broker message directly (an SQS record, a Workers queue message). */
  async deliver(message: BrokerMessage, attempt = 1): Promise<MessageOutcome> {
    // With no subscriber (build-constants.ts) the dispatcher refuses it: it reaches no handler, so spends no shot.
    if (globalThis.__MICRO_FN_NO_SUBSCRIBERS__) return this.service.dispatcher.deliver(message, attempt);
    if (this.#state !== 'waiting') return { ok: false, error: this.#refusal() };
    this.#take();
    const outcome = await this.service.dispatcher.deliver(message, attempt);
    await this.#finish({ kind: 'message', topic: message.topic, ...outcome });
    return outcome;
  }

  /**
   * Ends the function. Waiting: at once, deregistered. Serving: the handler's `ctx.signal` fires; what it answers
   * within the grace still reaches its caller, else the caller gets a 503 (a message fails, and is redelivered).
   */
  async stop(): Promise<FunctionOutcome> {
    if (this.#state === 'new' || this.#state === 'waiting') await this.#finish({ kind: 'stopped', ok: true });
    else if (this.#state === 'serving') this.service.dispatcher.interrupt(this.#stopped(), this.#grace);
    return this.done;
  }

  async #onRequest(request: ServerRequest, reply: Reply): Promise<void> {
    const dispatcher = this.service.dispatcher;
    if (request.probe || request.endpoint === HEALTH_ENDPOINT) return reply(await dispatcher.handle(request));
    if (this.#state !== 'waiting') return reply(dispatcher.errorResponse(request, this.#refusal()));
    const call = dispatcher.prepare(request);
    // Only the handler spends the one shot: a request that cannot reach it (another service, an unknown endpoint,
    // a content type or body it cannot decode, a deadline already gone) gets its error, and the function waits on.
    if (call.error) return reply(dispatcher.errorResponse(request, call.error));
    // #take(), written out: a probe has run this function, so in a warm instance nothing on the way to the
    // handler runs for the first time (V8 compiles a function at its first call: ~0.1 ms on a cold CPU).
    this.#state = 'serving';
    clearTimeout(this.#idleTimer);
    if (!globalThis.__MICRO_FN_NO_LISTENER__) setTimeout(this.#unsubscribe, 0);
    const response = await dispatcher.run(request, call);
    try {
      await reply(response);
    } catch (err) {
      this.service.logger.warn('the reply could not be delivered', { error: err });
    }
    // A stream is the invocation: the function ends once it has. A transport's reply resolves after the whole stream
    // was written; one that did not take it all has cancelled it (this is a no-op for a stream that has ended).
    const error =
      !globalThis.__MICRO_FN_NO_STREAMS__ && response.stream ? await endOf(response.stream) : response.error;
    await this.#finish({ kind: 'request', endpoint: request.endpoint, ok: !error, error });
  }

  async #onDelivery(delivery: Delivery): Promise<void> {
    if (globalThis.__MICRO_FN_NO_LISTENER__) return; // never subscribed
    // Not taken: nak without delay so the broker hands it to another instance at once.
    if (this.#state !== 'waiting') return delivery.nak(0);
    this.#take();
    const outcome = await this.service.dispatcher.deliver(delivery.message, delivery.attempt);
    try {
      await (outcome.ok ? delivery.ack() : delivery.nak(undefined, outcome.error));
    } catch (err) {
      this.service.logger.warn('settling the message failed; the broker will redeliver it', { error: err });
    }
    await this.#finish({ kind: 'message', topic: delivery.message.topic, ...outcome });
  }

  /** Refuses every other request and message from now on. */
  #take(): void {
    this.#state = 'serving';
    clearTimeout(this.#idleTimer);
    // Where it never listened nor subscribed (build-constants.ts), there is nothing to leave.
    if (!globalThis.__MICRO_FN_NO_LISTENER__) setTimeout(this.#unsubscribe, 0);
  }

  /**
   * Stops taking broker messages (one that still comes is refused at once: nak without delay) and refreshing the
   * registry entry. It runs after the invocation has started, off the path to the handler.
   */
  readonly #unsubscribe = (): void => void this.service.retire();

  /** Marked NOT_STARTED: the caller may send it to another instance, since this handler never saw it. */
  #refusal(): MicroError {
    return notStarted(503, `function ${this.name} has already taken its one invocation; try another instance`);
  }

  /** What the caller of a handler cut short by stop() gets. Not the refusal: the handler did run. */
  #stopped(): MicroError {
    return errors.unavailable(this.name, `function ${this.name} was stopped while its handler ran`);
  }

  async #finish(outcome: FunctionOutcome): Promise<void> {
    if (this.#state === 'finishing' || this.#state === 'done') return;
    this.#state = 'finishing';
    clearTimeout(this.#idleTimer);
    try {
      await this.#started?.catch(() => {});
      // A handler past its deadline (its caller already answered) gets the grace to wind down meanwhile.
      await Promise.all([this.service.stop(), this.service.dispatcher.settle(this.#grace)]);
    } catch (err) {
      this.service.logger.error('stopping failed', { error: err });
    }
    this.#state = 'done';
    this.#resolve(outcome);
  }
}

/** Cancels `stream` unless it has ended, then its error, if it ended with one. */
async function endOf(stream: MessageStream): Promise<MicroError | undefined> {
  await stream[Symbol.asyncIterator]().return?.();
  return (await stream.end).error;
}

/** ONE_SHOT_REGISTRATION, unless the configuration or the options say otherwise. */
function registration(options: FunctionOptions): { ttl?: number; interval?: number } {
  const env = options.env ?? {};
  const chosen = env.MICRO_REGISTER_TTL || env.MICRO_REGISTER_INTERVAL || options.ttl !== undefined || options.interval;
  return chosen ? {} : { ...ONE_SHOT_REGISTRATION };
}

/** Binds a definition to the plugins an adapter supplies. See MicroFunction. */
export function createFunction(definition: ServiceDefinition, options?: FunctionOptions): MicroFunction {
  return new MicroFunction(definition, options);
}

/**
 * Declares a function or service: what a user's module exports (`export default defineFunction({...})`).
 * It only checks the shape; the adapter that runs it creates the Function.
 */
export function defineFunction<const D extends ServiceDefinition>(definition: D): D {
  if (globalThis.__MICRO_FN_CHECKED__) return definition;
  if (!definition || typeof definition !== 'object')
    throw new TypeError('defineFunction takes an object: { name, handlers, subscribers }');
  if (typeof definition.name !== 'string' || definition.name === '')
    throw new TypeError('defineFunction needs a name, like { name: "helloworld" }');
  if (!definition.handlers && !definition.subscribers)
    throw new TypeError(`function ${definition.name} has neither handlers nor subscribers`);
  return definition;
}

/** A module's default export, checked: the one thing a function file must provide (`from` names the file in the error). */
export function asDefinition(value: unknown, from: string): ServiceDefinition {
  const def = value as Partial<ServiceDefinition> | undefined;
  if (!globalThis.__MICRO_FN_CHECKED__ && (!def || typeof def !== 'object' || typeof def.name !== 'string')) {
    throw new UserError(
      `${from} must \`export default defineFunction({ name, handlers })\` (its default export is ${def === undefined ? 'missing' : typeof def})`,
    );
  }
  return def as ServiceDefinition;
}
