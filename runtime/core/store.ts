/**
 * The store contract (issue 17): JSON values under string keys, per namespace, with revisions for compare-and-set,
 * TTLs and paged listing by prefix. go-micro's `store`, shaped so that one-shot instances running at once can update
 * the same key safely.
 *
 * Two layers: a plugin implements `StoreBackend` (JSON text per namespace and key; no validation), and `createStore`
 * wraps it in the `Store` a handler uses (`ctx.store`), which validates keys, namespaces, values and options once
 * for every plugin and encodes values as JSON. A plugin says what it guarantees (`StoreGuarantees`): the local and
 * memory stores are strongly consistent with atomic compare-and-set; JetStream KV has revisions too; Workers KV is
 * eventually consistent and has no compare-and-set, so such a plugin refuses `revision` with a 501.
 */
import { MicroError, errors } from './errors.js';

/** The id of the error a compare-and-set that lost gets (409): read the key again and retry. */
export const STORE_CONFLICT = 'micro-fn.store.conflict';
/** The id of every other store error raised here (400 bad key, 413 value too large, 501 unsupported). */
export const STORE_ERROR = 'micro-fn.store';

/** Bytes (UTF-8) of a key at most. */
export const MAX_KEY_BYTES = 1024;
/** Characters of a namespace at most. */
export const MAX_NAMESPACE_LENGTH = 128;
/** Bytes (UTF-8) of a value's JSON text at most: 1 MiB, the body limit of a call. */
export const MAX_VALUE_BYTES = 1_048_576; // 1 MiB
/** Entries of a listed page at most, and by default. */
export const MAX_LIST_LIMIT = 1000;
export const DEFAULT_LIST_LIMIT = 100;

/** What a plugin promises, so that code (and the contract suite) can tell what it may rely on. */
export interface StoreGuarantees {
  /** `set`/`delete` with `revision` are atomic compare-and-set. False: the plugin refuses `revision` (501). */
  compareAndSet: boolean;
  /** `strong`: a read after a write sees it, from any process. `eventual`: reads may lag writes (Workers KV). */
  consistency: 'strong' | 'eventual';
}

/** A value read from a store. */
export interface StoreEntry<T = unknown> {
  value: T;
  /** Changes with every write of the key; never reused for it, also across a delete and a later set. */
  revision: number;
}

/** A listed entry. */
export interface StoreListEntry<T = unknown> extends StoreEntry<T> {
  key: string;
}

export interface StoreSetOptions {
  /** Milliseconds until the key expires (a read after that finds nothing). Absent: never. */
  ttl?: number;
  /** Compare-and-set: only if the key's revision is this one; `0`: only if the key is absent. */
  revision?: number;
}

export interface StoreDeleteOptions {
  /** Only if the key's revision is this one. */
  revision?: number;
}

export interface StoreListOptions {
  /** Entries per page (default 100, at most 1000). */
  limit?: number;
  /** Where the previous page ended (its `cursor`). */
  cursor?: string;
}

/** One page of `list`, in key order; `cursor` is set when there may be more. */
export interface StorePage<T = unknown> {
  entries: StoreListEntry<T>[];
  cursor?: string;
}

/**
 * What a handler uses: `ctx.store` is the function's own namespace (its service name); `namespace(name)` opens
 * another, to share state between functions.
 * @example
 * // Increments a counter by compare-and-set, retrying when another instance won the race.
 * async Increment(_req: unknown, ctx: Context) {
 *   for (;;) {
 *     const current = await ctx.store.get<number>('count');
 *     try {
 *       const value = (current?.value ?? 0) + 1;
 *       await ctx.store.set('count', value, { revision: current?.revision ?? 0 });
 *       return { value };
 *     } catch (err) {
 *       if (!isConflict(err)) throw err;
 *     }
 *   }
 * }
 */
export interface Store {
  /** The namespace this store reads and writes. */
  readonly name: string;
  /** The value of `key` and its revision; undefined when absent or expired. */
  get<T = unknown>(key: string): Promise<StoreEntry<T> | undefined>;
  /** Writes `value` (any JSON value) and returns its new revision. A lost compare-and-set is a 409 STORE_CONFLICT. */
  set(key: string, value: unknown, options?: StoreSetOptions): Promise<number>;
  /** Deletes `key`; false when it was absent. With `revision`, a 409 STORE_CONFLICT unless it is that one. */
  delete(key: string, options?: StoreDeleteOptions): Promise<boolean>;
  /** The keys that start with `prefix` (all with ''), a page at a time. */
  list<T = unknown>(prefix?: string, options?: StoreListOptions): Promise<StorePage<T>>;
  /** The store of namespace `name`, over the same plugin. */
  namespace(name: string): Store;
  /** What the plugin under it promises. */
  guarantees(): Promise<StoreGuarantees>;
}

/** A value as a plugin keeps it: JSON text. */
export interface RawEntry {
  value: string;
  revision: number;
}

/**
 * What a store plugin implements. Arguments arrive validated (createStore does it); a plugin enforces TTL expiry on
 * read, never reuses a revision of a key, makes compare-and-set atomic when it says it does, and throws `conflict()`
 * when one loses.
 */
export interface StoreBackend {
  readonly guarantees: StoreGuarantees;
  get(namespace: string, key: string): Promise<RawEntry | undefined>;
  set(namespace: string, key: string, value: string, options: StoreSetOptions): Promise<number>;
  delete(namespace: string, key: string, options: StoreDeleteOptions): Promise<boolean>;
  list(
    namespace: string,
    prefix: string,
    options: { limit: number; cursor?: string },
  ): Promise<{ entries: (RawEntry & { key: string })[]; cursor?: string }>;
  close?(): Promise<void>;
}

/** The 409 a lost compare-and-set gets; `revision` is what the caller expected. */
export function conflict(namespace: string, key: string, revision: number, current: number | undefined): MicroError {
  const now = current === undefined ? 'absent' : `at revision ${current}`;
  const wanted = revision === 0 ? 'absent' : `at revision ${revision}`;
  return new MicroError(STORE_CONFLICT, 409, `${namespace}/${key} is ${now}, not ${wanted}: read it again and retry`, {
    retryable: false,
  });
}

/** True for the 409 of a lost compare-and-set (also one read off the wire). */
export function isConflict(err: unknown): boolean {
  return err instanceof Error && (err as MicroError).code === 409 && (err as MicroError).id === STORE_CONFLICT;
}

/**
 * The Store of `namespace` over the backend `open` gives (called on the first operation, so a function that never
 * touches its store never opens one).
 */
export function createStore(open: () => Promise<StoreBackend>, namespace: string): Store {
  checkNamespace(namespace);
  return new ValidatingStore(once(open), namespace);
}

class ValidatingStore implements Store {
  readonly name: string;
  readonly #open: () => Promise<StoreBackend>;

  constructor(open: () => Promise<StoreBackend>, name: string) {
    this.#open = open;
    this.name = name;
  }

  async get<T = unknown>(key: string): Promise<StoreEntry<T> | undefined> {
    checkKey(key);
    const raw = await (await this.#open()).get(this.name, key);
    return raw && { value: JSON.parse(raw.value) as T, revision: raw.revision };
  }

  async set(key: string, value: unknown, options: StoreSetOptions = {}): Promise<number> {
    checkKey(key);
    const text = encodeValue(value);
    const { ttl, revision } = options;
    if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0))
      throw errors.badRequest(STORE_ERROR, `ttl must be a whole number of milliseconds above 0; got ${String(ttl)}`);
    checkRevision(revision, true);
    const backend = await this.#open();
    if (revision !== undefined) refuseWithoutCas(backend);
    return backend.set(this.name, key, text, { ttl, revision });
  }

  async delete(key: string, options: StoreDeleteOptions = {}): Promise<boolean> {
    checkKey(key);
    checkRevision(options.revision, false);
    const backend = await this.#open();
    if (options.revision !== undefined) refuseWithoutCas(backend);
    return backend.delete(this.name, key, { revision: options.revision });
  }

  async list<T = unknown>(prefix = '', options: StoreListOptions = {}): Promise<StorePage<T>> {
    if (prefix !== '') checkKey(prefix, 'prefix');
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    if (!(Number.isInteger(limit) && limit > 0 && limit <= MAX_LIST_LIMIT))
      throw errors.badRequest(STORE_ERROR, `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}; got ${limit}`);
    if (options.cursor !== undefined) checkKey(options.cursor, 'cursor');
    const page = await (await this.#open()).list(this.name, prefix, { limit, cursor: options.cursor });
    return {
      entries: page.entries.map((e) => ({ key: e.key, value: JSON.parse(e.value) as T, revision: e.revision })),
      ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
    };
  }

  namespace(name: string): Store {
    checkNamespace(name);
    return new ValidatingStore(this.#open, name);
  }

  async guarantees(): Promise<StoreGuarantees> {
    return (await this.#open()).guarantees;
  }
}

function refuseWithoutCas(backend: StoreBackend): void {
  if (!backend.guarantees.compareAndSet)
    throw new MicroError(
      STORE_ERROR,
      501,
      'this store (MICRO_STORE) has no compare-and-set: write without revision, or choose a store that has one (local, memory, nats)',
    );
}

const encoder = /* @__PURE__ */ new TextEncoder();
// Control characters (C0, DEL, C1): a key is printed on one line and travels in URLs and NATS subjects.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Throws a 400 unless `key` is a key a store takes (non-empty, at most MAX_KEY_BYTES, no control characters). */
export function checkKey(key: unknown, what = 'key'): asserts key is string {
  if (typeof key !== 'string' || key === '')
    throw errors.badRequest(STORE_ERROR, `a store ${what} must be a non-empty string`);
  if (CONTROL.test(key))
    throw errors.badRequest(
      STORE_ERROR,
      `a store ${what} may not hold control characters (line breaks, tabs, NUL): ${JSON.stringify(key)}`,
    );
  // A UTF-16 unit is at most 3 bytes of UTF-8: a shorter key is not encoded to be measured.
  if (key.length > MAX_KEY_BYTES / 3 && (key.length > MAX_KEY_BYTES || encoder.encode(key).length > MAX_KEY_BYTES))
    throw errors.badRequest(
      STORE_ERROR,
      `a store ${what} is at most ${MAX_KEY_BYTES} bytes (UTF-8); got ${encoder.encode(key).length}`,
    );
}

/** Throws a 400 unless `name` is a namespace a store takes (as a key, at most MAX_NAMESPACE_LENGTH characters). */
export function checkNamespace(name: unknown): asserts name is string {
  checkKey(name, 'namespace');
  if (name.length > MAX_NAMESPACE_LENGTH)
    throw errors.badRequest(
      STORE_ERROR,
      `a store namespace is at most ${MAX_NAMESPACE_LENGTH} characters; got ${name.length}`,
    );
}

function checkRevision(revision: unknown, zero: boolean): void {
  if (revision === undefined) return;
  if (!(typeof revision === 'number' && Number.isSafeInteger(revision) && (revision > 0 || (zero && revision === 0))))
    throw errors.badRequest(
      STORE_ERROR,
      `revision must be a revision read from the store${zero ? ' (or 0: only if absent)' : ''}; got ${String(revision)}`,
    );
}

/** `value` as JSON text; a 400 for what JSON cannot hold, a 413 past MAX_VALUE_BYTES. */
export function encodeValue(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw errors.badRequest(STORE_ERROR, `a store value must be JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw errors.badRequest(STORE_ERROR, `a store value must be JSON; got ${typeof value}`);
  if (text.length > MAX_VALUE_BYTES / 3 && encoder.encode(text).length > MAX_VALUE_BYTES)
    throw errors.payloadTooLarge(STORE_ERROR, `a store value is at most ${MAX_VALUE_BYTES} bytes of JSON`);
  return text;
}

/** `open`, called once; a failure is not kept (the next operation tries again). */
function once<T>(open: () => Promise<T>): () => Promise<T> {
  let opened: Promise<T> | undefined;
  return () =>
    (opened ??= open().catch((err: unknown) => {
      opened = undefined;
      throw err;
    }));
}
