/** The memory store passes the store contract: one MemoryStore behind every client of a test. */
import { createStore } from '../../../../runtime/core/store.js';
import { createMemoryStore } from '../../../../runtime/plugins/memory/store.js';
import { storeContract } from '../../../contracts/store.js';

storeContract('MemoryStore contract', async () => {
  const backend = createMemoryStore();
  return { open: (namespace) => createStore(async () => backend, namespace), cleanup: async () => {} };
});
