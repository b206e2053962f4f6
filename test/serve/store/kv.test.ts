/**
 * serve's local key-value store (LMDB under MICRO_FN_HOME/store/kv) passes the store contract, with two handles on
 * the one folder as the parallel clients; its sweep removes what has expired.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStore } from '../../../runtime/core/store.js';
import { openKvStore, type KvStore } from '../../../serve/store/kv.js';
import { storeContract } from '../../contracts/store.js';

storeContract('KvStore contract (LMDB, two handles on one folder)', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-kv-'));
  const handles = [await openKvStore(home), await openKvStore(home)];
  let next = 0;
  return {
    open: (namespace) => {
      const kv = handles[next++ % handles.length]!;
      return createStore(async () => kv, namespace);
    },
    async cleanup() {
      for (const kv of handles) await kv.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
});

// ---

const sweep = suite<{ home: string; kv?: KvStore; now: number }>('KvStore.sweep', { home: '', now: 0 });

sweep.before.each(async (ctx) => {
  ctx.home = mkdtempSync(join(tmpdir(), 'micro-fn-kv-sweep-'));
  ctx.now = 1_000_000;
  ctx.kv = await openKvStore(ctx.home, { now: () => ctx.now, sweep: 0 });
});
sweep.after.each(async (ctx) => {
  await ctx.kv?.close();
  rmSync(ctx.home, { recursive: true, force: true });
});

sweep(
  'removes the 600 keys whose TTL passed, keeps the 3 within it, the 2 without and a key set again',
  async (ctx) => {
    const kv = ctx.kv!;
    for (let i = 0; i < 600; i++) await kv.set('ns', `short/${i}`, '1', { ttl: 100 });
    for (let i = 0; i < 3; i++) await kv.set('ns', `long/${i}`, '1', { ttl: 10_000 });
    for (let i = 0; i < 2; i++) await kv.set('ns', `none/${i}`, '1', {});
    // Set again without a TTL before it passed: no longer expires.
    await kv.set('ns', 'short/0', '2', {});
    ctx.now += 1000;
    assert.is(kv.sweep(), 599, '599 expired keys removed (more than one batch of 500)');
    assert.is(kv.sweep(), 0, 'nothing left to sweep');
    const left = (await kv.list('ns', '', { limit: 1000 })).entries.map((e) => e.key);
    assert.equal(left.sort(), ['long/0', 'long/1', 'long/2', 'none/0', 'none/1', 'short/0']);
    ctx.now += 20_000;
    assert.is(kv.sweep(), 3);
  },
);

sweep('keeps revisions across a close and an open of the folder (a serve restarted)', async (ctx) => {
  const first = await ctx.kv!.set('ns', 'k', '1', {});
  await ctx.kv!.close();
  ctx.kv = await openKvStore(ctx.home, { sweep: 0 });
  assert.equal(await ctx.kv.get('ns', 'k'), { value: '1', revision: first });
  assert.ok((await ctx.kv.set('ns', 'other', '1', {})) > first, 'the sequence went on where it was');
});

sweep.run();

// ---

const pages = suite('KvStore.list pages');

pages(
  'a page ends at 4 MiB of values whatever its limit: 12 values of 1 MiB come as pages of 4, 4, 4, every key once',
  async () => {
    const home = mkdtempSync(join(tmpdir(), 'micro-fn-kv-pages-'));
    const kv = await openKvStore(home, { sweep: 0 });
    try {
      const big = JSON.stringify('x'.repeat(1024 * 1024 - 2));
      for (let i = 0; i < 12; i++) await kv.set('ns', `k${String(i).padStart(2, '0')}`, big, {});
      await kv.set('ns', 'small', '1', {});
      const sizes: number[] = [];
      const keys: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await kv.list('ns', '', { limit: 1000, cursor });
        sizes.push(page.entries.length);
        keys.push(...page.entries.map((e) => e.key));
        cursor = page.cursor;
      } while (cursor !== undefined && sizes.length < 10);
      assert.equal(sizes, [4, 4, 4, 1]);
      assert.equal(keys, [...Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`), 'small']);
    } finally {
      await kv.close();
      rmSync(home, { recursive: true, force: true });
    }
  },
);

pages.run();
