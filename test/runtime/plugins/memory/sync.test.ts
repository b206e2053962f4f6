/** Memory sync passes the sync contract: one memory store behind both "hosts" (two Syncs of one process). */
import { createMemorySync } from '../../../../runtime/plugins/memory/sync.js';
import { syncContract } from '../../../contracts/sync.js';

syncContract('memory sync contract (two Syncs over one process)', async () => {
  const backend = createMemorySync();
  return { hosts: 2, backend: () => backend, cleanup: async () => {} };
});
