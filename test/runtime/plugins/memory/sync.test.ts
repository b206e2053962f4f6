/** Memory sync passes the sync contract: one memory store behind both "hosts" (two Syncs of one process). */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { MicroError } from '../../../../runtime/core/errors.js';
import { SYNC_HELD, createSync } from '../../../../runtime/core/sync.js';
import { createMemorySync } from '../../../../runtime/plugins/memory/sync.js';
import { syncContract } from '../../../contracts/sync.js';
import { rejects } from '../../../helpers.js';

syncContract('memory sync contract (two Syncs over one process)', async () => {
  const backend = createMemorySync();
  return { hosts: 2, backend: () => backend, cleanup: async () => {} };
});

// ---

const skew = suite('createSync over a store whose clock runs ahead of the holder');

skew(
  'leaves the next holder its lock when a holder releases one the store already expired (0 deletes of it)',
  async () => {
    let ahead = 0;
    const backend = createMemorySync({ now: () => Date.now() + ahead });
    const sync = createSync(async () => backend, 'skewed');
    const first = await sync.lock('k', { ttl: 60_000 });
    ahead = 61_000; // the store's clock jumps past the TTL; the holder's has not
    assert.ok(first.held, 'the holder still thinks it holds it');
    const second = await sync.lock('k', { ttl: 60_000, wait: 0 });
    await first.release();
    const err = (await rejects(() => sync.lock('k', { wait: 0 }))) as MicroError;
    assert.is(err.id, SYNC_HELD, 'the second still holds it after the first released late');
    assert.ok(second.token > first.token, 'and its token fences the first out');
    await second.release();
  },
);

skew.run();

// ---

const dispose = suite('a Lease and a Leadership under await using');

dispose('give themselves up at the end of their block (2 of 2 released)', async () => {
  const backend = createMemorySync();
  const sync = createSync(async () => backend, 'disposed');
  let tokens: number[] = [];
  {
    await using lease = await sync.lock('k', { ttl: 1000 });
    await using term = await sync.leader('l', { ttl: 1000 });
    tokens = [lease.token, term.token];
    assert.ok(lease.held && term.held, 'held inside the block');
  }
  const lease = await sync.lock('k', { wait: 0 });
  const term = await sync.leader('l', { wait: 0 });
  assert.ok(
    lease.token > tokens[0]! && term.token > tokens[1]!,
    `both were free again after the block: ${lease.token} ${term.token} after ${tokens.join(' ')}`,
  );
  await lease.release();
  await term.resign();
});

dispose.run();
