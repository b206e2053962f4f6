/**
 * The local key-value store (`MICRO_STORE=local`): LMDB under MICRO_FN_HOME/store/kv, one folder every serve on that
 * MICRO_FN_HOME opens (LMDB serialises writers across processes), so they all share one store. serve answers the
 * `Store.*` control endpoints from it (serve/store-control.ts); no function process opens it.
 *
 * Databases: `kv` ([namespace, key] → {v: JSON text, r: revision, e?: expiry}), `kv-expiry` ([expiry, namespace,
 * key] → 1, what the sweep reads) and `kv-meta` (`revision`: the last revision given). Every write is one LMDB
 * transaction, flushed before it is answered: the compare-and-set reads the current revision and writes in the same
 * transaction, so two writers (of this process or another) can never both win. Revisions come from one sequence in
 * that transaction: never reused for any key, also across a delete and a later set.
 */
import { join } from 'node:path';
import { conflict, type RawEntry, type StoreBackend, type StoreGuarantees } from '../../runtime/core/store.js';
import { openStore, type Database, type Store } from './store.js';

interface Kept {
  v: string;
  r: number;
  /** Epoch milliseconds after which it is gone. */
  e?: number;
}

type Key = [string, string];

/**
 * Characters of values a list page holds at most (past it, the page ends with its cursor however few entries it has):
 * 1,000 values of 1 MiB each would otherwise be one answer of 1 GiB in serve's memory, asked for by any function.
 */
const PAGE_CHARS = 4 * 1024 * 1024;
/** Expired entries removed per sweep transaction, at most (a sweep does several, each short). */
const SWEEP_BATCH = 500;
/** Milliseconds between sweeps of expired entries. */
export const SWEEP_INTERVAL = 30_000;

export interface KvStoreOptions {
  /** The clock (tests move it). Default Date.now. */
  now?: () => number;
  /** Milliseconds between sweeps (default SWEEP_INTERVAL); 0: none (a test sweeps by hand). */
  sweep?: number;
}

export class KvStore implements StoreBackend {
  readonly guarantees: StoreGuarantees = { compareAndSet: true, consistency: 'strong' };
  readonly #store: Store;
  readonly #kv: Database<Kept, Key>;
  readonly #expiry: Database<1, [number, string, string]>;
  readonly #meta: Database<number, string>;
  readonly #now: () => number;
  readonly #timer: ReturnType<typeof setInterval> | undefined;

  constructor(store: Store, options: KvStoreOptions = {}) {
    this.#store = store;
    this.#kv = store.database('kv');
    this.#expiry = store.database('kv-expiry');
    this.#meta = store.database('kv-meta');
    this.#now = options.now ?? Date.now;
    const every = options.sweep ?? SWEEP_INTERVAL;
    if (every > 0) {
      this.#timer = setInterval(() => {
        try {
          this.sweep();
        } catch (err) {
          // A sweep that failed (the disk full, say) leaves expired keys for the next; reads skip them meanwhile.
          process.stderr.write(`[micro-fn serve] sweeping expired store keys failed: ${(err as Error).message}\n`);
        }
      }, every);
      this.#timer.unref();
    }
  }

  async get(namespace: string, key: string): Promise<RawEntry | undefined> {
    this.#store.fresh(); // strong: a read after a write (of any process) sees it
    const kept = this.#live(this.#kv.get([namespace, key]));
    return kept && { value: kept.v, revision: kept.r };
  }

  async set(namespace: string, key: string, value: string, options: { ttl?: number; revision?: number }) {
    return this.#store.transactionSync(() => {
      const now = this.#now();
      const current = this.#live(this.#kv.get([namespace, key]), now);
      if (options.revision !== undefined && (current?.r ?? 0) !== options.revision)
        throw conflict(namespace, key, options.revision, current?.r);
      const old = this.#kv.get([namespace, key]);
      if (old?.e !== undefined) this.#expiry.removeSync([old.e, namespace, key]);
      const revision = (this.#meta.get('revision') ?? 0) + 1;
      this.#meta.putSync('revision', revision);
      const kept: Kept = { v: value, r: revision };
      if (options.ttl) {
        kept.e = now + options.ttl;
        this.#expiry.putSync([kept.e, namespace, key], 1);
      }
      this.#kv.putSync([namespace, key], kept);
      return revision;
    });
  }

  async delete(namespace: string, key: string, options: { revision?: number }): Promise<boolean> {
    return this.#store.transactionSync(() => {
      const old = this.#kv.get([namespace, key]);
      const current = this.#live(old);
      if (options.revision !== undefined && current?.r !== options.revision)
        throw conflict(namespace, key, options.revision, current?.r);
      if (!old) return false;
      if (old.e !== undefined) this.#expiry.removeSync([old.e, namespace, key]);
      this.#kv.removeSync([namespace, key]);
      return current !== undefined;
    });
  }

  async list(namespace: string, prefix: string, options: { limit: number; cursor?: string }) {
    this.#store.fresh();
    const now = this.#now();
    const entries: (RawEntry & { key: string })[] = [];
    const start = options.cursor !== undefined && options.cursor > prefix ? options.cursor : prefix;
    let last: string | undefined;
    let chars = 0;
    for (const { key, value } of this.#kv.getRange({ start: [namespace, start] })) {
      const [space, name] = key;
      if (space !== namespace || !name.startsWith(prefix)) break;
      if (name === options.cursor) continue;
      if (entries.length === options.limit || chars >= PAGE_CHARS) return { entries, cursor: last };
      last = name;
      if (this.#live(value, now)) {
        entries.push({ key: name, value: value.v, revision: value.r });
        chars += value.v.length;
      }
    }
    return { entries };
  }

  /**
   * Removes the entries whose TTL has passed (a read already treats them as absent); returns how many. Each batch is
   * one transaction that checks the entry still has that expiry (a set since then moved or removed it).
   */
  sweep(): number {
    let removed = 0;
    for (;;) {
      const now = this.#now();
      const due = [...this.#expiry.getRange({ end: [now + 1], limit: SWEEP_BATCH })].map((e) => e.key);
      if (due.length === 0) return removed;
      removed += this.#store.transactionSync(() => {
        let n = 0;
        for (const [at, namespace, key] of due) {
          this.#expiry.removeSync([at, namespace, key]);
          const kept = this.#kv.get([namespace, key]);
          if (kept?.e === at) n += this.#kv.removeSync([namespace, key]) ? 1 : 0;
        }
        return n;
      });
      if (due.length < SWEEP_BATCH) return removed;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#store.close();
  }

  #live(kept: Kept | undefined, now = this.#now()): Kept | undefined {
    return kept && (kept.e === undefined || kept.e > now) ? kept : undefined;
  }
}

/** Opens the local key-value store of `home` (MICRO_FN_HOME/store/kv). */
export async function openKvStore(home: string, options?: KvStoreOptions): Promise<KvStore> {
  return new KvStore(await openStore(join(home, 'store', 'kv')), options);
}
