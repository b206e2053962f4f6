/**
 * Where a service is found: its listener, its registry entry (registered, refreshed within the TTL, deregistered)
 * and its topic subscriptions. A Service has one only where it listens itself; a bundle for a host that hands a
 * function its invocations (Lambda, Workers, Deno: build-constants.ts) carries none of this.
 */
import type { SubscribeOptions, Subscription } from './broker.js';
import { readConfig } from './config.js';
import type { ServiceRecord } from './registry.js';
import type { Service, ServiceGate, ServiceOptions } from './service.js';
import type { Listener } from './transport.js';

export class Presence {
  readonly #service: Service;
  readonly #metadata: Record<string, string> | undefined;
  readonly #options: ServiceOptions;
  readonly #ttl: number;
  readonly #interval: number;
  readonly #address: string | undefined;
  #gate: ServiceGate;
  #listener: Listener | undefined;
  #subscriptions: Subscription[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  #unsubscribed = false;
  #retired = false;

  /** Reads and checks the registration settings (`MICRO_REGISTER_*`, `MICRO_SERVER_ADDRESS`): a bad one throws here. */
  constructor(service: Service, metadata: Record<string, string> | undefined, options: ServiceOptions) {
    const config = readConfig(options.env ?? {});
    this.#service = service;
    this.#metadata = metadata;
    this.#options = options;
    this.#ttl = options.ttl ?? config.registerTtl;
    this.#interval = options.interval ?? config.registerInterval;
    this.#address = options.address ?? config.serverAddress;
    const dispatcher = service.dispatcher;
    this.#gate = {
      onRequest: async (request, reply) => reply(await dispatcher.handle(request)),
      onDelivery: async (delivery) => {
        const outcome = await dispatcher.deliver(delivery.message, delivery.attempt);
        await (outcome.ok ? delivery.ack() : delivery.nak(undefined, outcome.error));
      },
    };
  }

  /** See Service.setGate. */
  setGate(gate: ServiceGate): void {
    this.#gate = gate;
  }

  /** The node address, once listening. */
  get address(): string | undefined {
    return this.#listener?.address;
  }

  /** The service as the registry stores it. */
  record(): ServiceRecord {
    const { name, version, id, router } = this.#service;
    return {
      name,
      version,
      metadata: { ...this.#metadata },
      endpoints: router.endpoints(),
      nodes: this.#listener ? [{ id, address: this.#listener.address, metadata: {} }] : [],
    };
  }

  /** Listens, registers, subscribes. A start that fails undoes itself. */
  async start(): Promise<void> {
    try {
      await this.#listenAndRegister();
      await this.#subscribe();
    } catch (err) {
      // Leave nothing behind: no registry entry pointing at a process that is about to exit.
      await this.close().catch(() => {});
      throw err;
    }
  }

  async #listenAndRegister(): Promise<void> {
    const { transport, registry } = this.#options;
    if (!transport?.listen) return;
    const { name, version, router, logger } = this.#service;
    const service = {
      name,
      version,
      endpoints: router
        .endpoints()
        .filter((e) => !e.metadata.subscriber)
        .map((e) => e.name),
      metadata: { ...this.#metadata },
    };
    this.#listener = await transport.listen((req, reply) => this.#gate.onRequest(req, reply), {
      address: this.#address,
      service,
    });
    if (!registry) return;
    await registry.register(this.record(), { ttl: this.#ttl });
    if (this.#interval > 0 && !this.#retired) {
      this.#timer = setInterval(() => {
        registry
          .register(this.record(), { ttl: this.#ttl })
          .catch((err: unknown) => logger.warn('re-register failed', { error: err }));
      }, this.#interval * 1000);
    }
  }

  async #subscribe(): Promise<void> {
    const broker = this.#options.broker;
    if (!broker) return;
    const { name, router } = this.#service;
    const options: SubscribeOptions = { queue: name, ...this.#options.subscribe, ack: 'manual' };
    for (const topic of router.topics) {
      if (this.#unsubscribed) break;
      const sub = await broker.subscribe(topic, (d) => this.#gate.onDelivery(d), options);
      if (this.#unsubscribed) await sub.unsubscribe();
      else this.#subscriptions.push(sub);
    }
  }

  /** See Service.retire. */
  retire(): Promise<void> {
    this.#retired = true;
    clearInterval(this.#timer);
    return this.unsubscribe();
  }

  /** Stops taking broker messages at once. */
  unsubscribe(): Promise<void> {
    this.#unsubscribed = true;
    const subs = this.#subscriptions;
    this.#subscriptions = [];
    return Promise.all(
      subs.map((s) =>
        s
          .unsubscribe()
          .catch((err: unknown) => this.#service.logger.warn(`unsubscribe ${s.topic} failed`, { error: err })),
      ),
    ).then(() => {});
  }

  /** Unsubscribes, deregisters, closes the listener. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.unsubscribe();
    const { registry } = this.#options;
    if (registry && this.#listener) {
      await registry
        .deregister(this.record())
        .catch((err: unknown) => this.#service.logger.warn('deregister failed', { error: err }));
    }
    await this.#listener?.close();
  }
}
