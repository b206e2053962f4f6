/**
 * The Workers KV store against a real KV namespace in workerd (miniflare's `kvNamespaces`, reached from Node through
 * miniflare's binding proxy): the store contract's eventual subset (no compare-and-set, eventually consistent: the
 * rest is skipped, counted), then what it does on its own.
 */
import { Miniflare } from 'miniflare';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { MicroError } from '../../../../runtime/core/errors.js';
import { STORE_ERROR, createStore } from '../../../../runtime/core/store.js';
import {
  createCloudflareKvStore,
  type CloudflareKvStore,
  type KvNamespace,
} from '../../../../runtime/plugins/cloudflare-kv/store.js';
import { storeContract } from '../../../contracts/store.js';
import { rejects, withTimeout } from '../../../helpers.js';

const BINDING = 'MICRO_FN_STORE';
/** One workerd for the whole file, started on first use, disposed by the last suite's `after`. */
let workerd: Promise<Miniflare> | undefined;
const miniflare = () =>
  (workerd ??= (async () => {
    const mf = new Miniflare({
      modules: true,
      script: 'export default { fetch: () => new Response("") }',
      host: '127.0.0.1',
      port: 0,
      kvNamespaces: [BINDING],
    });
    await withTimeout(mf.ready, 30_000, 'workerd start');
    return mf;
  })());
// Platform seam: miniflare types the binding with @cloudflare/workers-types, which micro-fn does not install.
const kvNamespace = async () => (await (await miniflare()).getKVNamespace(BINDING)) as unknown as KvNamespace;

storeContract(
  'CloudflareKvStore contract (a KV namespace in workerd)',
  async () => {
    const namespace = await kvNamespace();
    return {
      open: (name) => createStore(async () => createCloudflareKvStore({ namespace }), name),
      cleanup: async () => {},
    };
  },
  { guarantees: { compareAndSet: false, consistency: 'eventual' } },
);

let spaces = 0;
interface Context {
  kv: KvNamespace;
  ns: string;
  open(now?: () => number): CloudflareKvStore;
}
const CloudflareKvStoreSuite = suite<Context>('CloudflareKvStore', {} as Context);
CloudflareKvStoreSuite.before(async (ctx) => {
  ctx.kv = await kvNamespace();
  ctx.open = (now) => createCloudflareKvStore({ namespace: ctx.kv, now });
});
CloudflareKvStoreSuite.before.each((ctx) => {
  ctx.ns = `space/${++spaces}`;
});
CloudflareKvStoreSuite.after(async () => {
  const mf = workerd;
  workerd = undefined;
  await (await mf?.catch(() => undefined))?.dispose();
});

CloudflareKvStoreSuite(
  'set, get, list and delete: JSON values under <namespace, URI-encoded>/<key>, with metadata',
  async (ctx) => {
    const store = createStore(async () => ctx.open(), ctx.ns);
    const first = await store.set('a', { n: 1 });
    const second = await store.set('a', { n: 2 });
    assert.ok(second > first, `a later write of one instance has a higher revision (${second} > ${first})`);
    assert.equal(await store.get('a'), { value: { n: 2 }, revision: second });
    const raw = await ctx.kv.getWithMetadata(`${encodeURIComponent(ctx.ns)}/a`, { type: 'text' });
    assert.equal([raw.value, raw.metadata], ['{"n":2}', { r: second }], 'as Workers KV holds it');
    assert.is(await store.delete('a'), true);
    assert.is(await store.delete('a'), false);
    assert.is(await store.get('a'), undefined);
  },
);

CloudflareKvStoreSuite(
  'list pages through a prefix in key order with a cursor; namespaces (one with a slash) stay apart',
  async (ctx) => {
    const store = createStore(async () => ctx.open(), ctx.ns);
    const other = store.namespace(`${ctx.ns}/a`); // its keys must not show under ctx.ns's "a/"
    const keys = Array.from({ length: 25 }, (_, i) => `a/${String(i).padStart(2, '0')}`);
    for (const key of [...keys].reverse()) await store.set(key, key);
    await store.set('b', 0);
    await other.set('x', 1);
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.list('a/', { limit: 10, cursor });
      sizes.push(page.entries.length);
      seen.push(...page.entries.map((e) => e.key));
      cursor = page.cursor;
    } while (cursor !== undefined && sizes.length < 10);
    assert.equal(seen, keys, '25 keys, in order, each once');
    assert.equal(sizes, [10, 10, 5]);
    assert.is((await store.list('')).entries.length, 26);
    assert.equal(
      (await other.list('')).entries.map((e) => e.key),
      ['x'],
    );
  },
);

CloudflareKvStoreSuite(
  'a TTL: the exact expiry is in the metadata (a read past it finds nothing), KV keeps it 60 s at least',
  async (ctx) => {
    let now = Date.now();
    const store = createStore(async () => ctx.open(() => now), ctx.ns);
    await store.set('short', 1, { ttl: 200 });
    await store.set('long', 2, { ttl: 600_000 });
    const listed = await ctx.kv.list<{ e?: number }>({ prefix: `${encodeURIComponent(ctx.ns)}/` });
    assert.equal(
      listed.keys.map((k) => k.metadata?.e),
      [now + 600_000, now + 200],
    );
    now += 200;
    assert.is(await store.get('short'), undefined);
    assert.equal(
      (await store.list('')).entries.map((e) => e.key),
      ['long'],
    );
    assert.is(await store.delete('short'), false, 'expired: absent for delete');
  },
);

CloudflareKvStoreSuite(
  'compare-and-set is a 501 that says to choose another store, and writes nothing',
  async (ctx) => {
    const store = createStore(async () => ctx.open(), ctx.ns);
    for (const attempt of [() => store.set('k', 1, { revision: 0 }), () => store.delete('k', { revision: 5 })]) {
      const err = (await rejects(attempt)) as MicroError;
      assert.is(err.code, 501, String(err));
      assert.is(err.id, STORE_ERROR);
      assert.match(err.detail, /no compare-and-set/);
    }
    assert.is(await store.get('k'), undefined);
  },
);

CloudflareKvStoreSuite(
  'a key past Workers KV’s 512 bytes (with its namespace) is a one-line 400; a value written by others reads',
  async (ctx) => {
    const store = createStore(async () => ctx.open(), ctx.ns);
    const err = (await rejects(() => store.set('k'.repeat(600), 1))) as MicroError;
    assert.is(err.code, 400);
    assert.match(err.detail, /at most 512 bytes with its namespace/);
    await ctx.kv.put(`${encodeURIComponent(ctx.ns)}/foreign`, '"from wrangler"');
    assert.equal(await store.get('foreign'), { value: 'from wrangler', revision: 1 });
  },
);

CloudflareKvStoreSuite('refuses anything but a KV namespace binding', () => {
  assert.throws(() => createCloudflareKvStore({ namespace: {} as never }), /KV namespace binding/);
});

CloudflareKvStoreSuite.run();
