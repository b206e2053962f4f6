/**
 * The Workers KV store (`MICRO_STORE=cloudflare-kv`): a KV namespace bound to the Worker (the binding
 * `MICRO_STORE_ADDRESS` names, default `MICRO_FN_STORE`). Workers KV is eventually consistent (a write may take 60
 * seconds or more to be seen elsewhere) and has no compare-and-set, so this plugin promises neither: `revision` is
 * refused with a 501 (createStore does it), and code that needs to count or to take a lock must choose another store
 * (nats, over WebSocket).
 *
 * - Keys: `<namespace, URI-encoded>/<key>`, so a namespace's keys share one prefix for `list`. Workers KV takes keys
 *   of at most 512 bytes: a longer one is a 400 that says so.
 * - Revisions: informative only. Each write stores one in the key's metadata (its time in milliseconds × 1024 plus a
 *   random part), so a later write from anywhere almost always carries a higher one; nothing checks them.
 * - TTL: Workers KV expires keys after 60 seconds at the earliest, so the exact expiry is in the metadata too and a
 *   read past it finds nothing; KV removes the key itself later (`expirationTtl`, at least 60 s).
 */
import { MicroError, errors } from '../../core/errors.js';
import {
  STORE_ERROR,
  type RawEntry,
  type StoreBackend,
  type StoreDeleteOptions,
  type StoreGuarantees,
  type StoreSetOptions,
} from '../../core/store.js';

/** The part of a Workers KV namespace binding this plugin uses (workers-types' KVNamespace). */
export interface KvNamespace {
  getWithMetadata<M = unknown>(
    key: string,
    options: { type: 'text' },
  ): Promise<{ value: string | null; metadata: M | null }>;
  put(key: string, value: string, options?: { expirationTtl?: number; metadata?: unknown }): Promise<void>;
  delete(key: string): Promise<void>;
  list<M = unknown>(options: {
    prefix?: string;
    limit?: number;
    cursor?: string;
  }): Promise<{ keys: { name: string; metadata?: M }[]; list_complete: boolean; cursor?: string }>;
}

/** What each key's metadata holds: its revision, and when it expires (epoch ms). */
interface Meta {
  r?: number;
  e?: number;
}

export interface CloudflareKvStoreOptions {
  /** The binding (`env.MICRO_FN_STORE`). */
  namespace: KvNamespace;
  /** The clock expiry is judged by. Default Date.now. */
  now?: () => number;
}

/** The binding the plugin uses when MICRO_STORE_ADDRESS names none. */
export const DEFAULT_KV_BINDING = 'MICRO_FN_STORE';
/** Bytes (UTF-8) of a Workers KV key at most. */
export const KV_MAX_KEY_BYTES = 512;
/** Seconds Workers KV keeps a key with a TTL at least (its minimum `expirationTtl`). */
const KV_MIN_TTL_SECONDS = 60;
const ID = 'cloudflare-kv-store';
const utf8 = new TextEncoder();

/** True when `value` looks like a Workers KV binding. */
export function isKvNamespace(value: unknown): value is KvNamespace {
  const kv = value as Partial<Record<keyof KvNamespace, unknown>> | null | undefined;
  return (
    typeof kv === 'object' &&
    kv !== null &&
    typeof kv.getWithMetadata === 'function' &&
    typeof kv.put === 'function' &&
    typeof kv.delete === 'function' &&
    typeof kv.list === 'function'
  );
}

export class CloudflareKvStore implements StoreBackend {
  readonly guarantees: StoreGuarantees = { compareAndSet: false, consistency: 'eventual' };
  readonly #kv: KvNamespace;
  readonly #now: () => number;
  /** The last revision this instance gave, so that two writes of one instance never share one. */
  #last = 0;

  constructor(options: CloudflareKvStoreOptions) {
    if (!isKvNamespace(options?.namespace))
      throw errors.internal(
        ID,
        'the Workers KV store needs a KV namespace binding ({ namespace: env.MICRO_FN_STORE })',
      );
    this.#kv = options.namespace;
    this.#now = options.now ?? Date.now;
  }

  async get(namespace: string, key: string): Promise<RawEntry | undefined> {
    const { value, metadata } = await this.#call('get', () =>
      this.#kv.getWithMetadata<Meta>(kvKey(namespace, key), { type: 'text' }),
    );
    if (value === null || this.#expired(metadata)) return undefined;
    return { value, revision: metadata?.r ?? 1 };
  }

  async set(namespace: string, key: string, value: string, options: StoreSetOptions): Promise<number> {
    const name = kvKey(namespace, key);
    const now = this.#now();
    const revision = (this.#last = Math.max(this.#last + 1, now * 1024 + Math.floor(Math.random() * 1024)));
    const { ttl } = options;
    const meta: Meta = ttl === undefined ? { r: revision } : { r: revision, e: now + ttl };
    await this.#call('set', () =>
      this.#kv.put(name, value, {
        metadata: meta,
        ...(ttl === undefined ? {} : { expirationTtl: Math.max(KV_MIN_TTL_SECONDS, Math.ceil(ttl / 1000)) }),
      }),
    );
    return revision;
  }

  /** True when the key was there as this Worker saw it (Workers KV's delete itself does not say). */
  async delete(namespace: string, key: string, _options: StoreDeleteOptions): Promise<boolean> {
    const name = kvKey(namespace, key);
    const present = (await this.get(namespace, key)) !== undefined;
    await this.#call('delete', () => this.#kv.delete(name));
    return present;
  }

  async list(
    namespace: string,
    prefix: string,
    options: { limit: number; cursor?: string },
  ): Promise<{ entries: (RawEntry & { key: string })[]; cursor?: string }> {
    const head = `${encodeURIComponent(namespace)}/`;
    // The contract's cursor is the last key listed: KV's own cursor is opaque, so pages are walked from the prefix.
    const entries: (RawEntry & { key: string })[] = [];
    let kvCursor: string | undefined;
    let last: string | undefined;
    for (;;) {
      const page = await this.#call('list', () =>
        this.#kv.list<Meta>({ prefix: head + prefix, limit: 1000, ...(kvCursor ? { cursor: kvCursor } : {}) }),
      );
      const names = page.keys.filter((k) => options.cursor === undefined || k.name.slice(head.length) > options.cursor);
      for (let i = 0; i < names.length; i += 50) {
        const batch = names.slice(i, i + 50);
        const reads = await Promise.all(batch.map((k) => this.get(namespace, k.name.slice(head.length))));
        for (const [j, read] of reads.entries()) {
          const key = batch[j]!.name.slice(head.length);
          if (entries.length === options.limit) return { entries, cursor: last };
          if (read) entries.push({ key, ...read });
          last = key;
        }
      }
      if (page.list_complete || !page.cursor) return { entries };
      kvCursor = page.cursor;
    }
  }

  #expired(meta: Meta | null | undefined): boolean {
    return typeof meta?.e === 'number' && meta.e <= this.#now();
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof MicroError) throw err;
      // Workers KV's own refusals (a rate limit, a value too large) and outages: nothing says a write did not apply.
      throw new MicroError(ID, 500, `Workers KV ${what} failed: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    }
  }
}

/** The KV key of `key` in `namespace`; a 400 past Workers KV's 512 bytes. */
function kvKey(namespace: string, key: string): string {
  const name = `${encodeURIComponent(namespace)}/${key}`;
  const bytes = utf8.encode(name).length;
  if (bytes > KV_MAX_KEY_BYTES)
    throw errors.badRequest(
      STORE_ERROR,
      `a key on Workers KV is at most ${KV_MAX_KEY_BYTES} bytes with its namespace (${bytes} here): use a shorter key`,
    );
  return name;
}

/** A store on the Workers KV namespace `namespace` (a binding of the Worker). */
export function createCloudflareKvStore(options: CloudflareKvStoreOptions): CloudflareKvStore {
  return new CloudflareKvStore(options);
}
