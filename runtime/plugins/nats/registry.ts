// Only types come from `nats` here: the package itself is loaded by connection.ts when a connection opens.
import type { KV, KvEntry, NatsConnection, QueuedIterator } from 'nats';
import { Channel } from '../../core/channel.js';
import { ConfigError } from '../../core/config.js';
import { MicroError, isMicroError } from '../../core/errors.js';
import type {
  NodeRecord,
  RegisterOptions,
  Registry,
  RegistryEvent,
  ServiceRecord,
  WatchOptions,
} from '../../core/registry.js';
import {
  copyNode,
  describeService,
  isExpiredEntry,
  mergeNodeEntries,
  parseNodeEntry,
  sameDescription,
  sameNode,
  toServiceRecord,
  type NodeEntry,
} from '../../core/registry-records.js';
import type { NatsConnections } from './connections.js';
import { KvBucket } from './kv-bucket.js';

export type NatsRegistryOptions = (
  | { address: string; connection?: undefined; connections?: NatsConnections }
  | { connection: NatsConnection; address?: undefined; connections?: undefined }
) & {
  /** The KV bucket, created with history 1 and no max age when missing. Default `micro_fn_registry`. */
  bucket?: string;
  /**
   * Milliseconds a delete marker stays in the bucket before a later deregistration of its service sweeps it
   * away (watches learn of a delete from its marker as it is written). Default 5000.
   */
  markerAge?: number;
};

/** A key's value. `registered` is informative: the KV revision orders registrations. */
type NodeValue = NodeEntry;

/** `versions`: key prefix `<service>.<version>` -> key -> value. `ready`: the initial values are taken in. */
interface Watch {
  channel: Channel<RegistryEvent>;
  versions: Map<string, Map<string, NodeValue>>;
  ready: Promise<void>;
  settle(): void;
  iterator?: QueuedIterator<KvEntry>;
  timer?: ReturnType<typeof setTimeout>;
}

const ID = 'nats-registry';
const DEFAULT_MARKER_AGE = 5000;
/** A sweep reads for at most this long, and purges at most this many markers (the rest go next time). */
const SWEEP_TIMEOUT = 2000;
const SWEEP_MAX = 256;
const ignore = () => {};
const utf8 = new TextEncoder();

/** One KV key token: [-_/A-Za-z0-9] stay, every other UTF-8 byte ('.' and '=' too) is `=XX`; '' is `=`. */
const token = (value: string) =>
  Array.from(utf8.encode(value), (b) =>
    /[-\w/]/.test(String.fromCharCode(b))
      ? String.fromCharCode(b)
      : `=${b.toString(16).toUpperCase().padStart(2, '0')}`,
  ).join('') || '=';
const keyOf = (name: string, version: string, node: string) => `${token(name)}.${token(version)}.${token(node)}`;

// Same key, so same name, version and node id: a change is in the address, the metadata or the description.
const sameValue = (a: NodeValue, b: NodeValue) => sameNode(a.node, b.node) && sameDescription(a.service, b.service);

/** A key's value; undefined for a delete marker or anything foreign or garbled. */
function parse(entry: KvEntry | null): NodeValue | undefined {
  try {
    return entry?.operation === 'PUT' ? parseNodeEntry(entry.json()) : undefined;
  } catch {
    return undefined;
  }
}

type Live = NodeValue & { revision: number };
/** One record per name+version, nodes sorted by id, described by the node with the highest KV revision. */
const merge = (live: Live[]): ServiceRecord[] => mergeNodeEntries(live, (l) => l.revision);

/** A `nats` failure as a MicroError with the original as `cause`: 503/504 (retryable) when NATS is out of reach. */
function translate(err: unknown, what: string): MicroError {
  if (isMicroError(err)) return err;
  const code = String((err as { code?: unknown } | undefined)?.code ?? '');
  const status =
    code === 'TIMEOUT' || code === '408'
      ? 504
      : ['503', 'CONNECTION_CLOSED', 'CONNECTION_DRAINING', 'CONNECTION_REFUSED', 'DISCONNECT'].includes(code)
        ? 503
        : 500;
  // A registry operation may be repeated (a read, or a write of the same entry): out of reach is retryable, 504 too.
  return new MicroError(ID, status, `${what}: ${err instanceof Error ? err.message : String(err)}`, {
    retryable: status !== 500,
    cause: err,
  });
}
const groupOf = (w: Watch, prefix: string) => w.versions.get(prefix) ?? w.versions.set(prefix, new Map()).get(prefix)!;
const fail = (what: string) => (err: unknown) => Promise.reject(translate(err, what));

/**
 * A registry shared by every process that reaches one NATS server with JetStream: one key per node,
 * `<service>.<version>.<node id>` (tokens encoded), in a KV bucket without a max age, so a ttl-0 node (Lambda,
 * Workers: no heartbeat) stays until deregistered; readers skip expired nodes, getService deletes them. A delete
 * leaves a marker, which every read walks: a deregistration also sweeps its service's markers older than
 * `markerAge`, so one-shot instances (each registers once and deregisters) do not slow reads down. A watch
 * follows the bucket (changes after the call; a delete when a known node expires). The connection opens on first
 * use and reconnects by itself; a watch resumes losing nothing once its ordered consumer misses heartbeats
 * (10-15 s after a server restart).
 *
 * @example
 * import { createNatsRegistry } from 'micro-fn/nats';
 *
 * const registry = createNatsRegistry({ address: 'nats://127.0.0.1:4222' });
 * await registry.register({ name: 'greeter', version: '1.0.0', metadata: {}, endpoints: [],
 *   nodes: [{ id: 'greeter-1', address: 'http://127.0.0.1:8080', metadata: {} }] }, { ttl: 30 });
 * console.log(await registry.getService('greeter'));
 * await registry.close();
 */
export class NatsRegistry implements Registry {
  readonly bucket: string;
  readonly #markerAge: number;
  readonly #watches = new Set<Watch>();
  readonly #kv: KvBucket;
  #closed = false;

  constructor(options: NatsRegistryOptions) {
    const {
      address,
      connection,
      bucket = 'micro_fn_registry',
      markerAge = DEFAULT_MARKER_AGE,
    } = options ?? ({} as NatsRegistryOptions);
    if ((address === undefined) === (connection === undefined))
      throw new ConfigError('the NATS registry needs either { address: "nats://host:4222" } or { connection }');
    if (typeof bucket !== 'string' || !/^[-\w]+$/.test(bucket))
      throw new ConfigError(
        `a KV bucket name is letters, digits, '-' and '_', like micro_fn_registry; got "${String(bucket)}"`,
      );
    if (typeof markerAge !== 'number' || !Number.isFinite(markerAge) || markerAge < 0)
      throw new ConfigError(`markerAge is milliseconds >= 0, like 5000; got ${String(markerAge)}`);
    this.bucket = bucket;
    this.#markerAge = markerAge;
    // Binds to the bucket or creates it: history 1, file storage, no max_age (ttl-0 nodes must stay).
    this.#kv = new KvBucket({
      source: connection ? { connection } : { address: address!, connections: options.connections },
      name: 'micro-fn registry',
      bucket,
      kv: { history: 1 },
      closed: () => new MicroError(ID, 503, 'registry is closed'),
      failed: (err) => translate(err, `cannot open the KV bucket ${bucket}`),
    });
  }

  /** Puts one key per node; a record without nodes changes nothing. */
  async register(service: ServiceRecord, options: RegisterOptions = {}): Promise<void> {
    if (this.#closed) throw new MicroError(ID, 503, 'registry is closed');
    const ttl = options.ttl ?? 0;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0)
      throw new MicroError(ID, 400, `ttl must be a number of seconds >= 0 (0: never expires); got ${String(ttl)}`);
    if (!service || typeof service.name !== 'string' || service.name === '' || typeof service.version !== 'string')
      throw new MicroError(ID, 400, 'a service needs a non-empty name and a version string');
    if (!Array.isArray(service.nodes) || service.nodes.length === 0) return;
    if (!service.nodes.every((n) => typeof n?.id === 'string' && typeof n.address === 'string'))
      throw new MicroError(ID, 400, 'every node needs an id and an address string');
    const kv = await this.#bucket();
    // Open watches first take in the initial values, so that this change reaches them as an event (bounded).
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all([...this.#watches].map((w) => w.ready)),
      new Promise((r) => (timer = setTimeout(r, 5000))),
    ]);
    clearTimeout(timer);
    const [description, registered] = [describeService(service), Date.now()];
    const expires = ttl > 0 ? registered + ttl * 1000 : 0;
    const put = (node: NodeRecord) =>
      kv.put(
        keyOf(service.name, service.version, node.id),
        JSON.stringify({ service: description, node: copyNode(node), expires, registered }),
      );
    await Promise.all(service.nodes.map(put)).catch(fail(`cannot register ${service.name}`));
  }

  /**
   * Deletes the keys of the given nodes (leaving delete markers, which watches see), then sweeps the service's
   * older markers; unknown nodes change nothing.
   */
  async deregister(service: ServiceRecord): Promise<void> {
    if (
      !service ||
      typeof service.name !== 'string' ||
      typeof service.version !== 'string' ||
      !Array.isArray(service.nodes) ||
      service.nodes.length === 0
    )
      return;
    const kv = await this.#bucket();
    await Promise.all(service.nodes.map((n) => kv.delete(keyOf(service.name, service.version, String(n?.id))))).catch(
      fail(`cannot deregister ${service.name}`),
    );
    await this.#sweep(kv, `${token(service.name)}.>`).catch(ignore); // best effort: the next one tries again
  }

  /** Reads only this service's keys (kv.keys, then a get each): the client calls it on every request. */
  async getService(name: string): Promise<ServiceRecord[]> {
    if (typeof name !== 'string') return [];
    return merge((await this.#read(`${token(name)}.>`)).filter((l) => l.service.name === name));
  }

  async listServices(): Promise<ServiceRecord[]> {
    return merge(await this.#read('>'));
  }

  /** Changes from now on, by any process using the bucket; a watch opened after `close()` ends at once. */
  watch(options: WatchOptions = {}): AsyncIterable<RegistryEvent> {
    let settle = ignore;
    const w: Watch = {
      channel: undefined as never,
      versions: new Map(),
      ready: new Promise((r) => (settle = r)),
      settle: () => settle(),
    };
    w.channel = new Channel<RegistryEvent>(options.signal, () => {
      this.#watches.delete(w);
      clearTimeout(w.timer);
      w.iterator?.stop();
      w.settle();
    });
    if (this.#closed) w.channel.close();
    if (w.channel.closed) return w.channel;
    this.#watches.add(w);
    void this.#follow(w, options.service === undefined ? '>' : `${token(options.service)}.>`).catch(() =>
      w.channel.close(),
    );
    return w.channel;
  }

  /** Ends every watch and gives its share of the connection back (a borrowed one stays open). The bucket and its keys stay. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#watches]) w.channel.close();
    await this.#kv.close();
  }

  #bucket(): Promise<KV> {
    return this.#kv.get();
  }

  /**
   * Purges the delete markers under `filter` older than `markerAge` from the bucket's stream, each up to its own
   * revision: a value put on that key since stays. Reads only headers, for at most SWEEP_TIMEOUT.
   */
  async #sweep(kv: KV, filter: string): Promise<void> {
    const cutoff = Date.now() - this.#markerAge;
    const stale: KvEntry[] = [];
    let initialized = false;
    const iterator = await kv.watch({ key: filter, headers_only: true, initializedFn: () => (initialized = true) });
    // Called before watch() returned with nothing received: there is nothing under the filter.
    if (initialized && iterator.getReceived() === 0) return iterator.stop();
    const timer = setTimeout(() => iterator.stop(), SWEEP_TIMEOUT);
    try {
      for await (const entry of iterator) {
        if (entry.operation !== 'PUT' && entry.created.getTime() <= cutoff && stale.length < SWEEP_MAX)
          stale.push(entry);
        if (!entry.delta) break; // the last entry there was when the watch began
      }
    } finally {
      clearTimeout(timer);
      iterator.stop();
    }
    if (stale.length === 0) return;
    const jsm = await (await this.#kv.connection()).jetstreamManager();
    await Promise.all(
      stale.map((e) =>
        jsm.streams.purge(`KV_${this.bucket}`, { filter: `$KV.${this.bucket}.${e.key}`, seq: e.revision + 1 }),
      ),
    );
  }

  /** Live values under `filter`. Expired ones are deleted, on condition that nobody refreshed them meanwhile. */
  async #read(filter: string): Promise<Live[]> {
    const kv = await this.#bucket();
    try {
      const keys: string[] = [];
      for await (const key of await kv.keys(filter)) keys.push(key);
      const now = Date.now();
      return (await Promise.all(keys.map((key) => kv.get(key)))).flatMap((entry) => {
        const value = parse(entry);
        if (value && !isExpiredEntry(value, now)) return [{ ...value, revision: entry!.revision }];
        if (value) void kv.delete(entry!.key, { previousSeq: entry!.revision }).catch(ignore);
        return [];
      });
    } catch (err) {
      throw translate(err, 'cannot read the registry');
    }
  }

  async #follow(w: Watch, key: string): Promise<void> {
    const kv = await this.#bucket();
    let [started, initial, absorb] = [false, true, Number.POSITIVE_INFINITY];
    const done = () => ((initial = false), w.settle(), this.#arm(w));
    // kv.watch calls initializedFn itself when every initial value is already queued (they are then the first
    // getReceived() entries), else from inside the iteration, right after the last initial value.
    const iterator = await kv.watch({ key, initializedFn: () => (started ? done() : (absorb = -1)) });
    if (w.channel.closed) return iterator.stop();
    [w.iterator, started] = [iterator, true];
    if (absorb === -1 && (absorb = iterator.getReceived()) === 0) done();
    for await (const entry of iterator) {
      const prefix = entry.key.slice(0, entry.key.lastIndexOf('.'));
      const value = parse(entry);
      if (initial) {
        if (value && !isExpiredEntry(value, Date.now())) groupOf(w, prefix).set(entry.key, value);
        if (--absorb === 0) done();
        continue;
      }
      if (!value || isExpiredEntry(value, Date.now())) this.#drop(w, prefix, entry.key);
      else {
        const group = groupOf(w, prefix);
        const old = group.get(entry.key);
        group.set(entry.key, value);
        if (!old || !sameValue(old, value))
          w.channel.push({
            type: group.size === 1 && !old ? 'create' : 'update',
            service: toServiceRecord(value.service, [value.node]),
          });
      }
      this.#arm(w);
    }
    w.channel.close(); // the subscription ended: the connection was closed
  }

  #drop(w: Watch, prefix: string, key: string): void {
    const group = w.versions.get(prefix);
    const old = group?.get(key);
    if (!old || !group?.delete(key)) return;
    if (group.size === 0) w.versions.delete(prefix);
    w.channel.push({ type: 'delete', service: toServiceRecord(old.service, [old.node]) });
  }

  /** One unref'd timer per watch, for the next node to expire: an expiry is an event even if nobody reads. */
  #arm(w: Watch): void {
    clearTimeout(w.timer);
    let next = Number.POSITIVE_INFINITY;
    for (const group of w.versions.values())
      for (const v of group.values()) if (v.expires !== 0) next = Math.min(next, v.expires);
    if (next === Number.POSITIVE_INFINITY || w.channel.closed) return;
    w.timer = setTimeout(
      () => {
        for (const [prefix, group] of [...w.versions])
          for (const [key, v] of [...group]) if (isExpiredEntry(v, Date.now())) this.#drop(w, prefix, key);
        this.#arm(w);
      },
      Math.min(Math.max(0, next - Date.now()), 2 ** 31 - 1),
    ); // setTimeout's limit
    w.timer.unref?.();
  }
}

/** A registry on the KV bucket `bucket` (default `micro_fn_registry`) of the NATS server at `address` or `connection`. */
export function createNatsRegistry(options: NatsRegistryOptions): NatsRegistry {
  return new NatsRegistry(options);
}
