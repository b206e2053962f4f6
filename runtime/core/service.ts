import type { Broker, Delivery, SubscribeOptions, Subscription } from './broker.js';
import { Client } from './client.js';
import { newId } from './id.js';
import { jsonCodec, type Codec } from './codec.js';
import { readConfig, type Env } from './config.js';
import { createConsoleLogger, type LogLevel, type Logger } from './context.js';
import type { Registry, ServiceRecord } from './registry.js';
import { Router, type Hook, type ServiceDefinition } from './router.js';
import { Dispatcher } from './server.js';
import type { Listener, Reply, ServerRequest, Transport } from './transport.js';
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
  readonly #options: ServiceOptions;
  readonly #ttl: number;
  readonly #interval: number;
  #gate: ServiceGate;
  #listener: Listener | undefined;
  #subscriptions: Subscription[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #state: 'new' | 'starting' | 'started' | 'stopping' | 'stopped' = 'new';
  #stopped: Promise<void> | undefined;
  #unsubscribed = false;
  #retired = false;

  constructor(definition: ServiceDefinition, options: ServiceOptions = {}) {
    if (!definition || typeof definition.name !== 'string' || !/^[A-Za-z0-9][\w.-]*$/.test(definition.name)) {
      throw new TypeError(
        `a service needs a name of letters, digits, ".", "_" or "-"; got ${JSON.stringify(definition?.name)}`,
      );
    }
    const config = readConfig(options.env ?? {});
    this.#definition = definition;
    this.#options = options;
    this.name = definition.name;
    this.version = definition.version ?? 'latest';
    this.id = `${this.name}-${newId()}`;
    this.#ttl = options.ttl ?? config.registerTtl;
    this.#interval = options.interval ?? config.registerInterval;
    this.logger =
      options.logger ??
      createConsoleLogger(this.name, (options.env?.MICRO_LOG_LEVEL as LogLevel | undefined) ?? 'info');
    this.router = new Router(definition);
    this.tracer = options.tracer ?? nonRecordingTracer();
    const transports = options.transports ?? (options.transport ? [options.transport] : []);
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
            transports,
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
      env: options.env ?? {},
      timeout: (options.timeout ?? config.timeout) || undefined,
      tracer: this.tracer,
    });
    this.#gate = {
      onRequest: async (request, reply) => reply(await this.dispatcher.handle(request)),
      onDelivery: async (delivery) => {
        const outcome = await this.dispatcher.deliver(delivery.message, delivery.attempt);
        await (outcome.ok ? delivery.ack() : delivery.nak(undefined, outcome.error));
      },
    };
  }

  /** Replaces how requests and deliveries reach the dispatcher (used by Function). Call before start. */
  setGate(gate: ServiceGate): void {
    this.#gate = gate;
  }

  /** The node address, once listening. */
  get address(): string | undefined {
    return this.#listener?.address;
  }

  /** This instance as the registry stores it. */
  record(): ServiceRecord {
    // Never asked for where the platform hands it its invocations (build-constants.ts): it registers nowhere.
    if (globalThis.__MICRO_FN_NO_LISTENER__)
      return { name: this.name, version: this.version, metadata: {}, endpoints: [], nodes: [] };
    return {
      name: this.name,
      version: this.version,
      metadata: { ...this.#definition.metadata },
      endpoints: this.router.endpoints(),
      nodes: this.#listener ? [{ id: this.id, address: this.#listener.address, metadata: {} }] : [],
    };
  }

  /** beforeStart hooks, listen, register, subscribe, afterStart hooks. A start that fails undoes itself. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`service ${this.name} was already started`);
    this.#state = 'starting';
    await runHooks(this.#definition.beforeStart);
    try {
      await this.#listenAndRegister();
      await this.#subscribe();
    } catch (err) {
      // Leave nothing behind: no registry entry pointing at a process that is about to exit.
      await this.#undo().catch(() => {});
      throw err;
    }
    this.#state = 'started';
    await runHooks(this.#definition.afterStart);
  }

  async #listenAndRegister(): Promise<void> {
    if (globalThis.__MICRO_FN_NO_LISTENER__) return; // the platform hands it its invocations (build-constants.ts)
    const { transport, registry } = this.#options;
    if (!transport?.listen) return;
    const service = {
      name: this.name,
      version: this.version,
      endpoints: this.router
        .endpoints()
        .filter((e) => !e.metadata.subscriber)
        .map((e) => e.name),
      metadata: { ...this.#definition.metadata },
    };
    const address = this.#options.address ?? readConfig(this.#options.env ?? {}).serverAddress;
    this.#listener = await transport.listen((req, reply) => this.#gate.onRequest(req, reply), { address, service });
    if (!registry) return;
    await registry.register(this.record(), { ttl: this.#ttl });
    if (this.#interval > 0 && !this.#retired) {
      this.#timer = setInterval(() => {
        registry
          .register(this.record(), { ttl: this.#ttl })
          .catch((err: unknown) => this.logger.warn('re-register failed', { error: err }));
      }, this.#interval * 1000);
    }
  }

  async #subscribe(): Promise<void> {
    if (globalThis.__MICRO_FN_NO_LISTENER__) return; // the platform hands it its messages (build-constants.ts)
    const broker = this.#options.broker;
    if (!broker) return;
    const options: SubscribeOptions = { queue: this.name, ...this.#options.subscribe, ack: 'manual' };
    for (const topic of this.router.topics) {
      if (this.#unsubscribed) break;
      const sub = await broker.subscribe(topic, (d) => this.#gate.onDelivery(d), options);
      if (this.#unsubscribed) await sub.unsubscribe();
      else this.#subscriptions.push(sub);
    }
  }

  /**
   * Stops taking broker messages and stops refreshing the registry entry, which expires within its TTL unless
   * `stop()` deregisters it first: a one-shot function calls it the moment its invocation arrives.
   */
  retire(): Promise<void> {
    this.#retired = true;
    clearInterval(this.#timer);
    return this.unsubscribe();
  }

  /** Stops taking broker messages at once. */
  unsubscribe(): Promise<void> {
    this.#unsubscribed = true;
    if (globalThis.__MICRO_FN_NO_LISTENER__) return Promise.resolve(); // it never subscribed
    const subs = this.#subscriptions;
    this.#subscriptions = [];
    return Promise.all(
      subs.map((s) =>
        s.unsubscribe().catch((err: unknown) => this.logger.warn(`unsubscribe ${s.topic} failed`, { error: err })),
      ),
    ).then(() => {});
  }

  /** beforeStop hooks, unsubscribe, deregister, close the listener, afterStop hooks. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#state = 'stopping';
    await runHooks(this.#definition.beforeStop);
    await this.#undo();
    this.#state = 'stopped';
    await runHooks(this.#definition.afterStop);
  }

  /** Unsubscribe, deregister, close the listener. */
  async #undo(): Promise<void> {
    clearInterval(this.#timer);
    await this.unsubscribe();
    if (globalThis.__MICRO_FN_NO_LISTENER__) return; // it never listened nor registered
    const { registry } = this.#options;
    if (registry && this.#listener) {
      await registry
        .deregister(this.record())
        .catch((err: unknown) => this.logger.warn('deregister failed', { error: err }));
    }
    await this.#listener?.close();
  }
}

/** Creates a Service from a definition and the plugins to run it with. */
export function createService(definition: ServiceDefinition, options?: ServiceOptions): Service {
  return new Service(definition, options);
}

async function runHooks(hooks: Hook | Hook[] | undefined): Promise<void> {
  for (const hook of Array.isArray(hooks) ? hooks : hooks ? [hooks] : []) await hook();
}
