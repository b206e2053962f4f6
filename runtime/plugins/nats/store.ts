/**
 * The NATS store (`MICRO_STORE=nats`): one JetStream KV bucket (`micro_fn_store`, history 1, no max age) shared by
 * every host on that NATS server, from Node over TCP and from a Worker or Deno over WebSocket (`nats.ws`, as for the
 * other NATS plugins).
 *
 * - Keys: `<namespace>.<key>`, each one KV token: [-_/A-Za-z0-9] stay, every other UTF-8 byte ('.' and '=' too) is
 *   `=XX`, so any key the contract takes is stored (a 1024-byte key is at most 3072 characters) and `nats kv ls`
 *   shows plain keys as they are.
 * - Revisions: the bucket stream's sequence, so a revision is never reused, also across a delete and a later set.
 *   Compare-and-set is JetStream's expected-last-subject-sequence (`create` when absent, `update` on a revision),
 *   checked by the server: atomic, from any number of hosts.
 * - Consistency: strong. Reads go to the stream's leader (the bucket is opened with allow_direct off: a direct get
 *   may be answered by a replica that lags).
 * - TTL: a bucket's max age is the same for every key, so a key with a TTL carries its expiry in its value
 *   (`@<epoch ms>\n<json>`; a value without one is the JSON text alone). A read after that finds nothing, and deletes
 *   it on condition that nobody wrote it since. Expiry is judged by the reading host's clock. A compare-and-set on
 *   the revision read just before a key expired still wins (as if written a moment earlier).
 * - list: the namespace's keys (headers only), filtered by prefix and sorted here, then one get per listed key: a
 *   page costs a read of every key name of the namespace.
 */
// Only types come from `nats` here: the package itself is loaded by connection.ts when a connection opens.
import type { KV, KvEntry, NatsConnection } from 'nats';
import { ConfigError } from '../../core/config.js';
import { MicroError, errors, isMicroError } from '../../core/errors.js';
import {
  STORE_ERROR,
  conflict,
  type RawEntry,
  type StoreBackend,
  type StoreDeleteOptions,
  type StoreGuarantees,
  type StoreSetOptions,
} from '../../core/store.js';
import type { NatsConnections } from './connections.js';
import { KvBucket } from './kv-bucket.js';

export type NatsStoreOptions = (
  | { address: string; connection?: undefined; connections?: NatsConnections }
  | { connection: NatsConnection; address?: undefined; connections?: undefined }
) & {
  /** The KV bucket, created with history 1 and no max age when missing. Default `micro_fn_store`. */
  bucket?: string;
  /** The clock expiry is judged by (tests move it). Default Date.now. */
  now?: () => number;
};

const ID = 'nats-store';
/** JetStream's error code for a publish whose expected last subject sequence did not match. */
const WRONG_LAST_SEQUENCE = 10071;
/** Rounds a create (revision 0) tries against an expired value before it answers a conflict. */
const CREATE_ROUNDS = 3;
/** Gets in flight at once while a page is read. */
const LIST_BATCH = 64;
const ignore = () => {};
const utf8 = new TextEncoder();

const PLAIN_TOKEN = /^[-\w/]*$/;

/** One KV key token: [-_/A-Za-z0-9] stay, every other UTF-8 byte ('.' and '=' too) is `=XX`. */
export function storeToken(value: string): string {
  if (PLAIN_TOKEN.test(value)) return value; // most keys: nothing to escape
  return Array.from(utf8.encode(value), (b) =>
    (b >= 0x30 && b <= 0x39) ||
    (b >= 0x41 && b <= 0x5a) ||
    (b >= 0x61 && b <= 0x7a) ||
    b === 0x2d ||
    b === 0x5f ||
    b === 0x2f
      ? String.fromCharCode(b)
      : `=${b.toString(16).toUpperCase().padStart(2, '0')}`,
  ).join('');
}

/** The text a token stands for; undefined for one this store did not write. */
export function fromStoreToken(token: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c !== 0x3d) bytes.push(c);
    else if (/^[0-9A-F]{2}$/.test(token.slice(i + 1, i + 3)))
      bytes.push(parseInt(token.slice(i + 1, (i += 2) + 1), 16));
    else return undefined;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

/** A value as stored: the JSON text, after `@<expires>\n` when it has a TTL. */
function encode(value: string, expires: number | undefined): string {
  return expires === undefined ? value : `@${expires}\n${value}`;
}

function decode(stored: string): { value: string; expires?: number } {
  if (!stored.startsWith('@')) return { value: stored };
  const end = stored.indexOf('\n');
  return { value: stored.slice(end + 1), expires: Number(stored.slice(1, end)) };
}

/** A `nats` failure as a MicroError (cause kept). Only a read is retryable: a write that timed out may have applied. */
function translate(err: unknown, what: string, read: boolean): MicroError {
  if (isMicroError(err)) return err;
  const code = String((err as { code?: unknown } | undefined)?.code ?? '');
  const status =
    code === 'TIMEOUT' || code === '408'
      ? 504
      : ['503', 'CONNECTION_CLOSED', 'CONNECTION_DRAINING', 'CONNECTION_REFUSED', 'DISCONNECT'].includes(code)
        ? 503
        : 500;
  return new MicroError(ID, status, `${what}: ${err instanceof Error ? err.message : String(err)}`, {
    retryable: read && status !== 500,
    cause: err,
  });
}

const lostRace = (err: unknown) =>
  (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code === WRONG_LAST_SEQUENCE;

/** A live or expired value of a key, as read. */
interface Read {
  entry: RawEntry;
  expired: boolean;
}

/** See the file's comment. The connection opens on the first operation and reconnects by itself. */
export class NatsStore implements StoreBackend {
  readonly guarantees: StoreGuarantees = { compareAndSet: true, consistency: 'strong' };
  readonly bucket: string;
  readonly #now: () => number;
  readonly #kv: KvBucket;

  constructor(options: NatsStoreOptions) {
    const { address, connection, bucket = 'micro_fn_store' } = options ?? ({} as NatsStoreOptions);
    if ((address === undefined) === (connection === undefined))
      throw new ConfigError('the NATS store needs either { address: "nats://host:4222" } or { connection }');
    if (typeof bucket !== 'string' || !/^[-\w]+$/.test(bucket))
      throw new ConfigError(
        `a KV bucket name is letters, digits, '-' and '_', like micro_fn_store; got "${String(bucket)}"`,
      );
    this.bucket = bucket;
    this.#now = options.now ?? Date.now;
    // Binds to the bucket or creates it: history 1, no max age (keys without a TTL must stay); reads from the leader.
    this.#kv = new KvBucket({
      source: connection ? { connection } : { address: address!, connections: options.connections },
      name: 'micro-fn store',
      bucket,
      kv: { history: 1, allow_direct: false },
      closed: () => new MicroError(ID, 503, 'the NATS store is closed'),
      failed: (err) => translate(err, `cannot open the KV bucket ${bucket}`, true),
    });
  }

  async get(namespace: string, key: string): Promise<RawEntry | undefined> {
    const read = await this.#read(namespace, key);
    return read && !read.expired ? read.entry : undefined;
  }

  async set(namespace: string, key: string, value: string, options: StoreSetOptions): Promise<number> {
    const kv = await this.#bucket();
    const subject = keyOf(namespace, key);
    const stored = encode(value, options.ttl === undefined ? undefined : this.#now() + options.ttl);
    const { revision } = options;
    const what = `cannot set ${namespace}/${key}`;
    try {
      if (revision === undefined) return await kv.put(subject, stored);
      if (revision > 0) return await kv.update(subject, stored, revision);
      // Absent, or deleted (nats.js's create takes a key whose last entry is a delete marker); present, only an
      // expired value counts as absent, replaced on condition that it is still the one there. A conditional write
      // that lost applied nothing, so a round lost to a reader's sweep of that expired value (a delete marker now)
      // is tried again: the key is absent then, unless another writer won, which the next round finds.
      for (let round = 1; ; round++) {
        try {
          return await kv.create(subject, stored);
        } catch (err) {
          if (!lostRace(err)) throw err;
        }
        const current = await this.#read(namespace, key, false);
        if (!current?.expired || round === CREATE_ROUNDS) throw conflict(namespace, key, 0, current?.entry.revision);
        try {
          return await kv.update(subject, stored, current.entry.revision);
        } catch (err) {
          if (!lostRace(err)) throw err;
        }
      }
    } catch (err) {
      if (lostRace(err)) throw conflict(namespace, key, revision!, await this.#revisionOf(namespace, key));
      if ((err as { code?: unknown })?.code === 'MAX_PAYLOAD_EXCEEDED')
        throw errors.payloadTooLarge(
          STORE_ERROR,
          `${what}: the value${options.ttl === undefined ? '' : ' with its expiry stamp'} is more than this NATS server's max_payload: store less, or raise max_payload in its configuration`,
        );
      throw translate(err, what, false);
    }
  }

  async delete(namespace: string, key: string, options: StoreDeleteOptions): Promise<boolean> {
    const kv = await this.#bucket();
    const subject = keyOf(namespace, key);
    const { revision } = options;
    try {
      if (revision !== undefined) {
        await kv.delete(subject, { previousSeq: revision });
        return true;
      }
      const current = await this.#read(namespace, key);
      if (!current || current.expired) return false; // an expired one: #read deleted it
      await kv.delete(subject);
      return true;
    } catch (err) {
      if (lostRace(err)) throw conflict(namespace, key, revision!, await this.#revisionOf(namespace, key));
      throw translate(err, `cannot delete ${namespace}/${key}`, false);
    }
  }

  async list(
    namespace: string,
    prefix: string,
    options: { limit: number; cursor?: string },
  ): Promise<{ entries: (RawEntry & { key: string })[]; cursor?: string }> {
    const kv = await this.#bucket();
    const head = `${storeToken(namespace)}.`;
    const keys: string[] = [];
    try {
      for await (const name of await kv.keys(`${head}>`)) {
        const key = fromStoreToken(name.slice(head.length));
        if (key !== undefined && key.startsWith(prefix) && (options.cursor === undefined || key > options.cursor))
          keys.push(key);
      }
    } catch (err) {
      throw translate(err, `cannot list ${namespace}`, true);
    }
    keys.sort();
    const entries: (RawEntry & { key: string })[] = [];
    let i = 0;
    while (i < keys.length && entries.length < options.limit) {
      const batch = keys.slice(i, i + Math.min(LIST_BATCH, options.limit - entries.length));
      const reads = await Promise.all(batch.map((key) => this.#read(namespace, key)));
      for (const [j, read] of reads.entries())
        if (read && !read.expired) entries.push({ key: batch[j]!, ...read.entry });
      i += batch.length;
    }
    return i < keys.length ? { entries, cursor: keys[i - 1] } : { entries };
  }

  /** Gives its share of the connection back (a borrowed one stays open). The bucket and its keys stay. */
  async close(): Promise<void> {
    await this.#kv.close();
  }

  /**
   * The key's value, expired or not; an expired one is deleted unless written since (best effort, not awaited) when
   * `sweep`.
   */
  async #read(namespace: string, key: string, sweep = true): Promise<Read | undefined> {
    const kv = await this.#bucket();
    let entry: KvEntry | null;
    try {
      entry = await kv.get(keyOf(namespace, key));
    } catch (err) {
      throw translate(err, `cannot get ${namespace}/${key}`, true);
    }
    if (!entry || entry.operation !== 'PUT') return undefined;
    const { value, expires } = decode(entry.string());
    const expired = expires !== undefined && expires <= this.#now();
    if (expired && sweep) void kv.delete(entry.key, { previousSeq: entry.revision }).catch(ignore);
    return { entry: { value, revision: entry.revision }, expired };
  }

  /** The live revision of a key for a conflict's message; undefined when absent or unreadable. */
  async #revisionOf(namespace: string, key: string): Promise<number | undefined> {
    const read = await this.#read(namespace, key).catch(() => undefined);
    return read && !read.expired ? read.entry.revision : undefined;
  }

  #bucket(): Promise<KV> {
    return this.#kv.get();
  }
}

const keyOf = (namespace: string, key: string) => `${storeToken(namespace)}.${storeToken(key)}`;

/**
 * A store on a JetStream KV bucket shared by every host that reaches the NATS server.
 * @example
 * import { createNatsStore } from 'micro-fn/nats';
 * import { createStore } from 'micro-fn';
 *
 * const backend = createNatsStore({ address: 'nats://127.0.0.1:4222' });
 * const counters = createStore(async () => backend, 'counters');
 * await counters.set('hits', 1);
 */
export function createNatsStore(options: NatsStoreOptions): NatsStore {
  return new NatsStore(options);
}
