/**
 * NATS sync: locks and elections on a JetStream KV bucket (`micro_fn_sync`), by its compare-and-set (`create`,
 * `update` on a revision, `delete` on a revision). nats-server before 2.11 has no TTL per key, so expiry is judged
 * on the server's clock alone: an entry's `created` is the server's time of its write, and a contender that finds
 * the key held writes a probe key and compares the probe's `created` with the holder's. Only when the server's own
 * clock says `ttl` has passed since the holder's last write does the contender take the key over, by `update` on
 * the holder's revision (so of two contenders one wins). No two machines' clocks are compared; the holder counts
 * its TTL from before it sent its write, so it stops calling itself the holder no later than that.
 *
 * Revisions are the bucket stream's sequence: they only grow, across keys and deletes, so they are fencing tokens.
 */
import type { KV, KvEntry, NatsConnection } from 'nats';
import { errors, MicroError } from '../../core/errors.js';
import { conflict, type RawEntry, type StoreDeleteOptions, type StoreSetOptions } from '../../core/store.js';
import type { SyncBackend } from '../../core/sync.js';
import type { NatsConnections } from './connections.js';
import { KvBucket } from './kv-bucket.js';

export const SYNC_BUCKET = 'micro_fn_sync';
/** The key whose writes tell the server's time. */
const CLOCK_KEY = 'clock';

export interface NatsSyncOptions {
  /** `nats://host:port` (`ws://` on the Web); ignored when `connection` is given. */
  address?: string;
  /** A connection of the caller's (not closed by `close`). */
  connection?: NatsConnection;
  /** The pool shared with the other NATS plugins of the set (one connection per server); default one of its own. */
  connections?: NatsConnections;
}

/** What a key holds: the caller's JSON text and the TTL it was written with. */
interface Held {
  v: string;
  ttl?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class NatsSync implements SyncBackend {
  readonly guarantees = { compareAndSet: true, consistency: 'strong' } as const;
  readonly #kv: KvBucket;

  constructor(options: NatsSyncOptions) {
    const { address, connection, connections } = options;
    this.#kv = new KvBucket({
      source: connection ? { connection } : { address: address!, connections },
      name: 'micro-fn sync',
      bucket: SYNC_BUCKET,
      kv: { history: 1 },
      closed: () => errors.unavailable('micro-fn.sync', 'the NATS sync is closed'),
      failed: fail,
    });
  }

  async get(namespace: string, key: string): Promise<RawEntry | undefined> {
    const kv = await this.#bucket();
    const read = await this.#read(kv, keyOf(namespace, key));
    return read && !read.expired ? { value: read.held.v, revision: read.entry.revision } : undefined;
  }

  async set(namespace: string, key: string, value: string, options: StoreSetOptions): Promise<number> {
    const kv = await this.#bucket();
    const k = keyOf(namespace, key);
    const data = encoder.encode(JSON.stringify({ v: value, ...(options.ttl ? { ttl: options.ttl } : {}) }));
    if (options.revision === undefined) return kv.put(k, data).catch(fail);
    if (options.revision > 0) {
      try {
        return await kv.update(k, data, options.revision);
      } catch (err) {
        if (isWrongSequence(err)) throw conflict(namespace, key, options.revision, undefined);
        throw fail(err);
      }
    }
    try {
      return await kv.create(k, data);
    } catch (err) {
      if (!isWrongSequence(err)) throw fail(err);
    }
    // Held: take it over only if the server's clock says it expired, on the very revision judged expired (a
    // renewal since makes the update fail).
    const read = await this.#read(kv, k);
    if (read && !read.expired) throw conflict(namespace, key, 0, read.entry.revision);
    try {
      return read ? await kv.update(k, data, read.entry.revision) : await kv.create(k, data);
    } catch (err) {
      if (isWrongSequence(err)) throw conflict(namespace, key, 0, undefined);
      throw fail(err);
    }
  }

  async delete(namespace: string, key: string, options: StoreDeleteOptions): Promise<boolean> {
    const kv = await this.#bucket();
    const k = keyOf(namespace, key);
    try {
      await kv.delete(k, options.revision === undefined ? undefined : { previousSeq: options.revision });
      return true;
    } catch (err) {
      if (isWrongSequence(err)) throw conflict(namespace, key, options.revision ?? 0, undefined);
      throw fail(err);
    }
  }

  /** Gives its share of the connection back (a borrowed one stays open); later calls are refused. */
  async close(): Promise<void> {
    await this.#kv.close();
  }

  /** The entry of `k` (undefined when absent or deleted), and whether it is past its TTL by the server's clock. */
  async #read(kv: KV, k: string): Promise<{ entry: KvEntry; held: Held; expired: boolean } | undefined> {
    const entry = await kv.get(k).catch(fail);
    if (!entry || entry.operation !== 'PUT') return undefined;
    const held = JSON.parse(decoder.decode(entry.value)) as Held;
    const expired = held.ttl !== undefined && (await this.#serverNow(kv)) - entry.created.getTime() >= held.ttl;
    return { entry, held, expired };
  }

  /**
   * A time the server's clock has certainly reached: the `created` of the clock key after a write of it now (ours, or
   * a later one of another contender's: the bucket keeps one; either has happened).
   */
  async #serverNow(kv: KV): Promise<number> {
    await kv.put(CLOCK_KEY, new Uint8Array(0)).catch(fail);
    const probe = await kv.get(CLOCK_KEY).catch(fail);
    if (!probe) throw errors.unavailable('micro-fn.sync', 'the NATS sync bucket lost its clock key: try again');
    return probe.created.getTime();
  }

  #bucket(): Promise<KV> {
    return this.#kv.get();
  }
}

/** A KV key for namespace and key: each base64url (what NATS keys allow), joined by a dot. */
function keyOf(namespace: string, key: string): string {
  return `l.${base64url(namespace)}.${base64url(key)}`;
}

function base64url(text: string): string {
  let binary = '';
  for (const byte of encoder.encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** JetStream's refusal of a write whose expected last sequence was not the key's (10071). */
function isWrongSequence(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(e?.message ?? '');
}

function fail(err: unknown): never {
  if (err instanceof MicroError) throw err;
  throw errors.unavailable('micro-fn.sync', `NATS sync: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

export function createNatsSync(options: NatsSyncOptions): NatsSync {
  return new NatsSync(options);
}
