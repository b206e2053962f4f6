import type { Broker, Delivery, SubscribeOptions } from './broker.js';
import { Client } from './client.js';
import { newId } from './id.js';
import { jsonCodec, type Codec } from './codec.js';
import { readTimeout, type Env } from './config.js';
import { createConsoleLogger, type LogLevel, type Logger } from './context.js';
import type { Registry } from './registry.js';
import { Router, type Hook, type ServiceDefinition } from './router.js';
import { Dispatcher } from './server.js';
import { Presence } from './presence.js';
import type { Reply, ServerRequest, Transport } from './transport.js';
import { nonRecordingTracer, type Tracer } from './trace.js';
import type { StoreBackend } from './store.js';
import type { SyncBackend } from './sync.js';
import type { ConfigBackend } from './function-config.js';

export interface ServiceOptions {
  registry?: Registry;
  broker?: Broker;
  /** The transport to listen with; also used by the client unless `transports` is given. */
  transport?: Transport;
  /** Transports the service's client calls out with. */
  transports?: Transport[];
  /** Where to listen, in the transport's form. Default: `MICRO_SERVER_ADDRESS` or the transport's default. */
  address?: string;
  codecs?: Codec[];
  logger?: Logger;
  /** Configuration (`MICRO_*` and whatever the handlers read). Default: empty. */
  env?: Env;
  /** Seconds; default `MICRO_REGISTER_TTL` or 60. */
  ttl?: number;
  /** Seconds between re-registrations; default `MICRO_REGISTER_INTERVAL` or 30. */
  interval?: number;
  /**
   * Milliseconds a handler or subscriber may run (the caller's `Micro-Timeout` can only shorten it): past it the
   * caller gets 408 and the handler's `ctx.signal` fires. Default `MICRO_FN_TIMEOUT`, else the caller's deadline alone.
   */
  timeout?: number;
  /** Options of every topic subscription (a function takes `{ max: 1 }`). Queue group defaults to the service name. */
  subscribe?: SubscribeOptions;
  /** Client options for outgoing calls (timeout, retries, selector). */
  client?: Client;
  /** Opens the store plugin behind `ctx.store` on first use (when no `client` is given; a client carries its own). */
  store?: () => Promise<StoreBackend>;
  /** Opens the sync plugin behind `ctx.sync` on first use (when no `client` is given). */
  sync?: () => Promise<SyncBackend>;
  /** Opens the config plugin behind `ctx.config`'s `kv` layer on first use (when no `client` is given). */
  config?: () => Promise<ConfigBackend>;
  /**
   * Records each invocation as a span (and, through the default client, each call and publish). Default: one that
   * records nothing and passes a `traceparent` on. A given `client` brings its own tracer for calls out.
   */
  tracer?: Tracer;
}

/** Hooks the Function puts between the listener/broker and the dispatcher. */
export interface ServiceGate {
  onRequest(request: ServerRequest, reply: Reply): Promise<void>;
  onDelivery(delivery: Delivery): Promise<void>;
}

/**
 * A long-running service: listens, registers (refreshing within the TTL), subscribes its topics, and
 * deregisters on stop. The base of a one-shot Function.
 * @example
 * const service = createService({ name: 'greeter', handlers: { Greeter: { Hello: (r: { name: string }) => ({ message: `Hello ${r.name}` }) } } },
 *   { registry: createMemoryRegistry(), transport: createHttpTransport() });
 * await service.start();
 */
export class Service {
  readonly name: string;
  readonly version: string;
  /** This instance's node id. */
  readonly id: string;
  readonly client: Client;
  readonly dispatcher: Dispatcher;
  readonly logger: Logger;
  readonly router: Router;
  readonly tracer: Tracer;
  readonly #definition: ServiceDefinition;
  /**
   * Its listener, registry entry and subscriptions. None where the platform hands it its invocations: such a bundle
   * (build-constants.ts) carries none of that code.
   */
  readonly #presence: Presence | undefined;
  #started = false;
  #stopped: Promise<void> | undefined;

  constructor(definition: ServiceDefinition, options: ServiceOptions = {}) {
    if (
      !globalThis.__MICRO_FN_CHECKED__ &&
      (!definition || typeof definition.name !== 'string' || !/^[A-Za-z0-9][\w.-]*$/.test(definition.name))
    ) {
      throw new TypeError(
        `a service needs a name of letters, digits, ".", "_" or "-"; got ${JSON.stringify(definition?.name)}`,
      );
    }
    const env = options.env ?? {};
    this.#definition = definition;
    this.name = definition.name;
    this.version = definition.version ?? 'latest';
    this.id = `${this.name}-${newId()}`;
    this.logger =
      options.logger ?? createConsoleLogger(this.name, (env.MICRO_LOG_LEVEL as LogLevel | undefined) ?? 'info');
    this.router = new Router(definition);
    this.tracer = options.tracer ?? nonRecordingTracer();
    // A bundle whose function never calls out has none (build-constants.ts): `ctx.client` says so.
    this.client =
      options.client?.with({ fromService: this.name }) ??
      (globalThis.__MICRO_FN_NO_CLIENT__
        ? (undefined as never)
        : new Client({
            registry: options.registry,
            broker: options.broker,
            store: options.store,
            sync: options.sync,
            config: options.config,
            transports: options.transports ?? (options.transport ? [options.transport] : []),
            fromService: this.name,
            tracer: this.tracer,
          }));
    this.dispatcher = new Dispatcher({
      service: this.name,
      router: this.router,
      codecs: options.codecs ?? [jsonCodec],
      logger: this.logger,
      client: this.client,
      broker: options.broker,
      env,
      timeout: (options.timeout ?? readTimeout(env)) || undefined,
      tracer: this.tracer,
    });
    this.#presence = globalThis.__MICRO_FN_NO_LISTENER__ ? undefined : new Presence(this, definition.metadata, options);
  }

  /** Replaces how requests and deliveries reach the dispatcher (used by Function). Call before start. */
  setGate(gate: ServiceGate): void {
    this.#presence?.setGate(gate);
  }

  /** The node address, once listening. */
  get address(): string | undefined {
    return this.#presence?.address;
  }

  /** beforeStart hooks, listen, register, subscribe, afterStart hooks. A start that fails undoes itself. */
  async start(): Promise<void> {
    if (this.#started) throw new Error(`service ${this.name} was already started`);
    this.#started = true;
    await runHooks(this.#definition.beforeStart);
    await this.#presence?.start();
    await runHooks(this.#definition.afterStart);
  }

  /**
   * Stops taking broker messages and stops refreshing the registry entry, which expires within its TTL unless
   * `stop()` deregisters it first: a one-shot function calls it the moment its invocation arrives.
   */
  async retire(): Promise<void> {
    await this.#presence?.retire();
  }

  /** Stops taking broker messages at once. */
  async unsubscribe(): Promise<void> {
    await this.#presence?.unsubscribe();
  }

  /** beforeStop hooks, unsubscribe, deregister, close the listener, afterStop hooks. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    await runHooks(this.#definition.beforeStop);
    await this.#presence?.close();
    await runHooks(this.#definition.afterStop);
  }
}

/** Creates a Service from a definition and the plugins to run it with. */
export function createService(definition: ServiceDefinition, options?: ServiceOptions): Service {
  return new Service(definition, options);
}

async function runHooks(hooks: Hook | Hook[] | undefined): Promise<void> {
  for (const hook of Array.isArray(hooks) ? hooks : hooks ? [hooks] : []) await hook();
}
