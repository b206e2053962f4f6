/**
 * Memory sync: locks and elections on a memory store of its own (runtime/core/sync.ts builds them on its atomic
 * compare-and-set and TTLs). Within one process only: for tests and a single long-running host.
 */
import type { SyncBackend } from '../../core/sync.js';
import { createMemoryStore, type MemoryStoreOptions } from './store.js';

export function createMemorySync(options?: MemoryStoreOptions): SyncBackend {
  return createMemoryStore(options);
}
