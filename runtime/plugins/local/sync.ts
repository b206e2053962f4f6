/**
 * Local sync: locks and elections on the store `micro-fn serve` keeps under MICRO_FN_HOME (runtime/core/sync.ts
 * builds them on its compare-and-set and TTLs). LMDB serialises the writes of every serve on that MICRO_FN_HOME, and
 * its TTLs run on the machine's one clock, so two serve processes (and every function they run) share the locks.
 * The store token serve gives its functions opens them, as it opens the store.
 */
import type { SyncBackend } from '../../core/sync.js';
import { createLocalStore, type LocalStoreOptions } from './store.js';

export function createLocalSync(options: LocalStoreOptions): SyncBackend {
  return createLocalStore(options);
}
