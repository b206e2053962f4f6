/**
 * The memory store: a Map per process, strongly consistent, compare-and-set atomic (JavaScript runs one operation
 * at a time). For tests and a single long-running process: two processes never see each other's values.
 */
import { conflict, type RawEntry, type StoreBackend, type StoreGuarantees } from '../../core/store.js';

interface Kept {
  value: string;
  revision: number;
  /** Epoch milliseconds after which it is gone. */
  expires?: number;
}

export interface MemoryStoreOptions {
  /** The clock (tests move it). Default Date.now. */
  now?: () => number;
}

export class MemoryStore implements StoreBackend {
  readonly guarantees: StoreGuarantees = { compareAndSet: true, consistency: 'strong' };
  /** Namespace to key to entry. */
  readonly #spaces = new Map<string, Map<string, Kept>>();
  /** One sequence for every write: a revision is never reused, also across a delete and a later set. */
  #revision = 0;
  readonly #now: () => number;

  constructor(options: MemoryStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  async get(namespace: string, key: string): Promise<RawEntry | undefined> {
    const kept = this.#live(namespace, key);
    return kept && { value: kept.value, revision: kept.revision };
  }

  async set(namespace: string, key: string, value: string, options: { ttl?: number; revision?: number }) {
    const current = this.#live(namespace, key);
    if (options.revision !== undefined && (current?.revision ?? 0) !== options.revision)
      throw conflict(namespace, key, options.revision, current?.revision);
    const revision = ++this.#revision;
    let space = this.#spaces.get(namespace);
    if (!space) this.#spaces.set(namespace, (space = new Map()));
    space.set(key, { value, revision, ...(options.ttl ? { expires: this.#now() + options.ttl } : {}) });
    return revision;
  }

  async delete(namespace: string, key: string, options: { revision?: number }): Promise<boolean> {
    const current = this.#live(namespace, key);
    if (options.revision !== undefined && current?.revision !== options.revision)
      throw conflict(namespace, key, options.revision, current?.revision);
    return current !== undefined && this.#spaces.get(namespace)!.delete(key);
  }

  async list(namespace: string, prefix: string, options: { limit: number; cursor?: string }) {
    const space = this.#spaces.get(namespace);
    const keys = [...(space?.keys() ?? [])].filter(
      (k) => k.startsWith(prefix) && (!options.cursor || k > options.cursor),
    );
    keys.sort();
    const entries: (RawEntry & { key: string })[] = [];
    let last: string | undefined;
    for (const key of keys) {
      if (entries.length === options.limit) return { entries, cursor: last };
      const kept = this.#live(namespace, key);
      if (kept) entries.push({ key, value: kept.value, revision: kept.revision });
      last = key;
    }
    return { entries };
  }

  /** The entry, unless absent or expired (an expired one is dropped as it is found). */
  #live(namespace: string, key: string): Kept | undefined {
    const space = this.#spaces.get(namespace);
    const kept = space?.get(key);
    if (kept?.expires !== undefined && kept.expires <= this.#now()) {
      space!.delete(key);
      return undefined;
    }
    return kept;
  }
}

export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
