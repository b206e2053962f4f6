import { Channel } from '../../core/channel.js';
import { MicroError } from '../../core/errors.js';
import {
  copyNode,
  describeService,
  sameDescription,
  sameNode,
  toServiceRecord,
  type ServiceDescription,
} from '../../core/registry-records.js';
import type {
  NodeRecord,
  RegisterOptions,
  Registry,
  RegistryEvent,
  RegistryEventType,
  ServiceRecord,
  WatchOptions,
} from '../../core/registry.js';

export interface MemoryRegistryOptions {
  /** Services known from the start, kept until deregistered (go-micro's `memory.Services`). */
  services?: ServiceRecord[];
}

/** One registered version: its description plus its live nodes, each with its own expiry. */
interface Entry {
  service: ServiceDescription;
  nodes: Map<string, { node: NodeRecord; expires: number }>;
}

// setTimeout takes a signed 32-bit delay; a longer one fires at once.
const MAX_DELAY = 2 ** 31 - 1;

const now = () => performance.now();

/**
 * A registry that lives in this process only: services registered here are visible to this process alone.
 * The default for tests and for a single process that hosts its own functions. Node expiry is driven by one
 * unref'd timer, so a forgotten registry never keeps the process alive.
 *
 * @example
 * import { createMemoryRegistry } from 'micro-fn/memory';
 *
 * const registry = createMemoryRegistry();
 * await registry.register({ name: 'greeter', version: '1.0.0', metadata: {}, endpoints: [],
 *   nodes: [{ id: 'greeter-1', address: 'http://127.0.0.1:8080', metadata: {} }] }, { ttl: 30 });
 * console.log(await registry.getService('greeter'));
 * await registry.close();
 */
export class MemoryRegistry implements Registry {
  /** name -> version -> entry */
  readonly #services = new Map<string, Map<string, Entry>>();
  /** open watches -> the service name they filter on */
  readonly #watchers = new Map<Channel<RegistryEvent>, string | undefined>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(options: MemoryRegistryOptions = {}) {
    for (const service of options.services ?? []) this.#register(service, 0);
  }

  /** Adds or refreshes the nodes of `service`; a record without nodes changes nothing. */
  async register(service: ServiceRecord, options: RegisterOptions = {}): Promise<void> {
    if (this.#closed) throw new MicroError('memory-registry', 503, 'registry is closed');
    const ttl = options.ttl ?? 0;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
      throw new MicroError(
        'memory-registry',
        400,
        `ttl must be a number of seconds >= 0 (0: never expires); got ${String(ttl)}`,
      );
    }
    this.#register(service, ttl);
  }

  /** Removes the nodes of `service` (by id); unknown nodes are ignored. */
  async deregister(service: ServiceRecord): Promise<void> {
    this.#sweep();
    const entry = this.#services.get(service.name)?.get(service.version);
    if (!entry) return;
    const gone = new Map<string, NodeRecord>();
    for (const { id } of service.nodes) {
      const node = entry.nodes.get(id)?.node;
      if (node) gone.set(id, node);
    }
    this.#remove(entry, [...gone.values()]);
  }

  async getService(name: string): Promise<ServiceRecord[]> {
    this.#sweep();
    return Array.from(this.#services.get(name)?.values() ?? [], (e) => toServiceRecord(e.service, this.#live(e)));
  }

  async listServices(): Promise<ServiceRecord[]> {
    this.#sweep();
    return [...this.#services.values()].flatMap((versions) =>
      Array.from(versions.values(), (e) => toServiceRecord(e.service, this.#live(e))),
    );
  }

  /** Events from now on; a watch opened after `close()` ends at once. */
  watch(options: WatchOptions = {}): AsyncIterable<RegistryEvent> {
    // `let` without an initializer: the close callback may run inside the constructor (signal already aborted).
    let channel: Channel<RegistryEvent> | undefined;
    channel = new Channel<RegistryEvent>(options.signal, () => this.#watchers.delete(channel!));
    if (this.#closed) channel.close();
    else if (!channel.closed) this.#watchers.set(channel, options.service);
    return channel;
  }

  /** Stops the expiry timer and ends every watch. Registered services stay readable. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const channel of [...this.#watchers.keys()]) channel.close();
  }

  #register(service: ServiceRecord, ttl: number): void {
    if (!service || typeof service.name !== 'string' || service.name === '' || typeof service.version !== 'string') {
      throw new MicroError('memory-registry', 400, 'a service needs a non-empty name and a version string');
    }
    if (!Array.isArray(service.nodes) || service.nodes.length === 0) return;
    this.#sweep();
    const expires = ttl > 0 ? now() + ttl * 1000 : Infinity;
    let versions = this.#services.get(service.name);
    if (!versions) this.#services.set(service.name, (versions = new Map()));
    const existing = versions.get(service.version);
    const entry: Entry = existing ?? { service: describeService(service), nodes: new Map() };
    const described = existing !== undefined && !sameDescription(existing.service, describeService(service));
    entry.service = describeService(service);
    const changed: NodeRecord[] = [];
    for (const node of service.nodes) {
      const previous = entry.nodes.get(node.id)?.node;
      if (!previous || !sameNode(previous, node)) changed.push(node);
      entry.nodes.set(node.id, { node: copyNode(node), expires });
    }
    versions.set(service.version, entry);
    if (!existing) this.#emit('create', toServiceRecord(entry.service, this.#live(entry)));
    else if (described || changed.length > 0) this.#emit('update', toServiceRecord(entry.service, changed));
    this.#schedule();
  }

  /** Drops `gone` from the entry (and the entry once empty), then tells the watchers. */
  #remove(entry: Entry, gone: NodeRecord[]): void {
    if (gone.length === 0) return;
    for (const node of gone) entry.nodes.delete(node.id);
    if (entry.nodes.size === 0) {
      const versions = this.#services.get(entry.service.name);
      versions?.delete(entry.service.version);
      if (versions?.size === 0) this.#services.delete(entry.service.name);
    }
    this.#emit('delete', toServiceRecord(entry.service, gone));
  }

  #live(entry: Entry): NodeRecord[] {
    return Array.from(entry.nodes.values(), (n) => n.node);
  }

  /** Removes every expired node now, whether or not the timer has fired yet. */
  #sweep(): void {
    const t = now();
    for (const versions of [...this.#services.values()]) {
      for (const entry of [...versions.values()]) {
        this.#remove(
          entry,
          [...entry.nodes.values()].filter((n) => n.expires <= t).map((n) => n.node),
        );
      }
    }
  }

  /** One timer for the earliest expiry; re-armed after every sweep. */
  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    let next = Infinity;
    for (const versions of this.#services.values())
      for (const entry of versions.values()) for (const n of entry.nodes.values()) next = Math.min(next, n.expires);
    if (next === Infinity) return;
    const timer = setTimeout(
      () => {
        this.#sweep();
        this.#schedule();
      },
      Math.min(MAX_DELAY, Math.max(0, Math.ceil(next - now()))),
    );
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  #emit(type: RegistryEventType, service: ServiceRecord): void {
    for (const [channel, name] of this.#watchers) {
      // A copy per watcher: one watcher mutating its event must not change what another sees.
      if (name === undefined || name === service.name)
        channel.push({ type, service: toServiceRecord(service, service.nodes) });
    }
  }
}

/** A registry kept in this process's memory. */
export function createMemoryRegistry(options?: MemoryRegistryOptions): MemoryRegistry {
  return new MemoryRegistry(options);
}
