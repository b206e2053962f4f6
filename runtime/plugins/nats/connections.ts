/**
 * One NATS connection per server and credentials for the NATS plugins of one plugin set (registry, brokers,
 * transport, store, sync, config): a one-shot function on NATS pays one TCP connect and handshake at start, not one
 * per plugin. Shares are counted: a plugin's `close()` gives its share back, and the connection drains and closes
 * when the last share goes. A connection that failed to open is forgotten, so the next use tries again.
 *
 * The scope is the plugin set (resolve.ts hands each set its own `PluginContext.resources`), never the module: a
 * Worker must not use one request's I/O in another, and two functions in one process keep their own connections.
 * A plugin made without a pool gets a pool of its own (its own connection, as before); one made with a borrowed
 * `connection` never closes it.
 */
import type { NatsConnection } from 'nats';
import { ConfigError } from '../../core/config.js';
import { MicroError } from '../../core/errors.js';
import { connectNats, natsConnectionOptions } from './connection.js';

/** Where a plugin gets its connection: a share of the one to `address` (in `connections`), or the caller's own. */
export type NatsConnectionSource =
  | {
      address: string;
      /** Shown by `nats server report connections` when this plugin is the one that opens the connection. */
      name?: string;
      /** The pool shared with the other plugins of the set; default one of its own. */
      connections?: NatsConnections;
    }
  | { connection: NatsConnection };

/** A share of a pooled connection; `release` is idempotent. */
interface Share {
  nc: NatsConnection;
  release(drainLimit?: number): Promise<void>;
}

interface Entry {
  opened: Promise<NatsConnection>;
  shares: number;
  /** False between a disconnect and the reconnect: closing then neither drains nor flushes (nothing would answer). */
  online: boolean;
  stopWatch?: () => void;
}

/** Milliseconds a release waits for a flush (a share of several) or a drain (the last share), by default. */
const DRAIN_LIMIT = 5000;
const ignore = () => {};

/** Waits for `promise` (its failure included) at most `ms` milliseconds. */
export async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([promise.catch(ignore), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** The connections of one plugin set, one per server list and credentials (the connection name is not part of it). */
export class NatsConnections {
  readonly #entries = new Map<string, Entry>();

  /** How many connections are open or opening (tests and diagnostics). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * A share of the connection to `address`, opening it unless one is open or opening. Rejects with the open's failure
   * (a retryable 503), which is not kept.
   */
  async acquire(address: string, name: string): Promise<Share> {
    const options = natsConnectionOptions(address); // a ConfigError that shows the forms
    const key = JSON.stringify([options.servers, options.user, options.pass, options.token]);
    let entry = this.#entries.get(key);
    if (!entry) {
      const made: Entry = { opened: connectNats({ address, name }), shares: 0, online: true };
      this.#entries.set(key, made);
      const forget = () => void (this.#entries.get(key) === made && this.#entries.delete(key));
      made.opened.then((nc) => {
        void nc.closed().then(forget);
        void this.#watch(made, nc);
      }, forget);
      entry = made;
    }
    entry.shares++;
    let nc: NatsConnection;
    try {
      nc = await entry.opened;
    } catch (err) {
      entry.shares--;
      throw err;
    }
    let released = false;
    const held = entry;
    return {
      nc,
      release: async (drainLimit = DRAIN_LIMIT) => {
        if (released) return;
        released = true;
        if (--held.shares > 0) {
          // What this plugin published reaches the server before its close resolves; the others keep the connection.
          if (held.online && !nc.isClosed()) await within(nc.flush(), drainLimit);
          return;
        }
        if (this.#entries.get(key) === held) this.#entries.delete(key); // the next acquire opens a new one
        held.stopWatch?.();
        // Drain flushes what was published; a server that is gone would keep it reconnecting: bound it, then close.
        if (held.online && !nc.isClosed() && !nc.isDraining()) await within(nc.drain(), drainLimit);
        if (!nc.isClosed()) await nc.close().catch(ignore);
      },
    };
  }

  /** Follows the connection's status (nats.js hands every `status()` iterator each event, so plugins may too). */
  async #watch(entry: Entry, nc: NatsConnection): Promise<void> {
    const status = nc.status() as AsyncIterable<{ type: string }> & { stop?: () => void };
    entry.stopWatch = () => status.stop?.();
    for await (const { type } of status) {
      if (type === 'disconnect') entry.online = false;
      else if (type === 'reconnect') entry.online = true;
    }
  }
}

/** A connection opened on first use (or borrowed); `close()` gives back only a share it took itself. */
export interface LazyConnection {
  get(): Promise<NatsConnection>;
  /** Gives the share back (the last one drains the connection, within `drainLimit` ms); later `get()`s reject. */
  close(drainLimit?: number): Promise<void>;
}

/**
 * Checks the source (a ConfigError says how to fix it); takes a share on the first `get()`, which later ones and
 * those in flight share; a failed open is not kept, so the next `get()` tries again.
 */
export function lazyConnection(source: NatsConnectionSource, id: string, name = id): LazyConnection {
  const borrowed = source && 'connection' in source ? source.connection : undefined;
  if (borrowed) return { get: async () => borrowed, close: async () => {} };
  const own = source as Extract<NatsConnectionSource, { address: string }> | undefined;
  if (typeof own?.address !== 'string')
    throw new ConfigError(`${id} needs { address: 'nats://127.0.0.1:4222' } or { connection }`);
  const { address, connections: pool = new NatsConnections() } = own;
  natsConnectionOptions(address); // throws a ConfigError that shows the forms
  let share: Promise<Share> | undefined;
  let closed = false;
  return {
    get: () => {
      if (closed) return Promise.reject(new MicroError(id, 503, `${id} is closed`));
      const taking = (share ??= pool.acquire(address, own.name ?? name).catch((err: unknown) => {
        share = undefined; // the next call tries again
        throw err;
      }));
      return taking.then((s) => s.nc);
    },
    async close(drainLimit) {
      closed = true;
      await (await share?.catch(() => undefined))?.release(drainLimit);
    },
  };
}
