/**
 * examples/counter as a Worker in real workerd: on a Workers KV binding (MICRO_STORE=cloudflare-kv) it fails clearly,
 * counting nothing, since KV has no compare-and-set; on the NATS store over WebSocket (MICRO_STORE=nats) concurrent
 * increments end exactly.
 */
import { Miniflare } from 'miniflare';
import { COMPATIBILITY_DATE } from '../../../adapters/cloudflare/deploy.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { natsAvailable, startNatsServer, type NatsServer } from '../../nats-server.js';
import { withTimeout } from '../../helpers.js';
import { buildWorker, fixture, startWorker, tempDir } from './worker.js';
import type { KvNamespace } from '../../../runtime/plugins/cloudflare-kv/store.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const counter = fileURLToPath(new URL('../../../examples/counter/index.ts', import.meta.url));
const helloworld = fileURLToPath(new URL('../../../examples/helloworld/index.ts', import.meta.url));

/** Strings only each store plugin's code holds. */
const NATS_CLIENT = '$KV.'; // nats.js's KV subjects
const KV_PLUGIN = 'Workers KV';
/** A string of the NATS store alone (its bucket): the NATS client itself may come with the broker. */
const KV_PLUGIN_OF_NATS = 'micro_fn_store';
const bundleText = (built: { file: string; artifacts: { file: string }[] }) =>
  [built.file, ...built.artifacts.map((a) => a.file)].map((f) => readFileSync(f, 'utf8')).join('\n');

// ---
const bundles = suite<{ dir: string; remove(): void }>('store plugins in a Worker bundle', {
  dir: '',
  remove: () => {},
});
bundles.before.each((ctx) => void Object.assign(ctx, tempDir()));
bundles.after.each((ctx) => ctx.remove());

bundles(
  'a function that never touches ctx.store carries no store plugin, whichever MICRO_STORE names (4 builds), and runs',
  async (ctx) => {
    const nats = { MICRO_STORE: 'nats', MICRO_STORE_ADDRESS: 'wss://nats.example.com' };
    const kvVars = { MICRO_STORE: 'cloudflare-kv' };
    const hello = bundleText(await buildWorker(helloworld, join(ctx.dir, 'hello-nats'), nats));
    assert.not.ok(hello.includes(NATS_CLIENT), 'helloworld with MICRO_STORE=nats: no NATS client');
    assert.not.ok(bundleText(await buildWorker(helloworld, join(ctx.dir, 'hello-kv'), kvVars)).includes(KV_PLUGIN));
    assert.ok(bundleText(await buildWorker(counter, join(ctx.dir, 'counter-nats'), nats)).includes(NATS_CLIENT));
    assert.ok(bundleText(await buildWorker(counter, join(ctx.dir, 'counter-kv'), kvVars)).includes(KV_PLUGIN));
    // Configured with a store it does not carry, helloworld still answers: it never opens one.
    const built = await buildWorker(helloworld, join(ctx.dir, 'hello-run'), nats);
    const mf = startWorker(built, join(ctx.dir, 'hello-run'), nats);
    try {
      const res = await withTimeout(
        mf.dispatchFetch('http://worker.test/helloworld/Greeter.Hello', {
          method: 'POST',
          body: '{"name":"Ada"}',
          headers: { 'content-type': 'application/json' },
        }),
        30_000,
        'Greeter.Hello',
      );
      assert.equal([res.status, await res.json()], [200, { message: 'Hello Ada' }]);
    } finally {
      await mf.dispose();
    }
  },
);

bundles.run();

const call = async (mf: Miniflare, endpoint: string, body: unknown = {}) => {
  const res = await withTimeout(
    mf.dispatchFetch(`http://worker.test/counter/Counter.${endpoint}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    }),
    30_000,
    `Counter.${endpoint}`,
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

// ---
const kv = suite<{ mf: Miniflare; dir: string; remove(): void }>(
  'examples/counter as a Worker on a Workers KV binding',
  {
    mf: undefined as never,
    dir: '',
    remove: () => {},
  },
);
kv.before(async (ctx) => {
  const { dir, remove } = tempDir();
  [ctx.dir, ctx.remove] = [dir, remove];
  const built = await buildWorker(counter, dir, { MICRO_STORE: 'cloudflare-kv' });
  // As startWorker, with a KV namespace bound as MICRO_FN_STORE (the plugin's default binding).
  ctx.mf = new Miniflare({
    modules: [built.file, ...built.artifacts.map((a) => a.file)].map((path) => ({ type: 'ESModule' as const, path })),
    modulesRoot: dir,
    compatibilityDate: COMPATIBILITY_DATE,
    host: '127.0.0.1',
    port: 0,
    bindings: { MICRO_STORE: 'cloudflare-kv' },
    kvNamespaces: ['MICRO_FN_STORE'],
  });
  await withTimeout(ctx.mf.ready, 30_000, 'workerd start');
});
kv.after(async (ctx) => {
  await ctx.mf?.dispose();
  ctx.remove();
});

kv('Increment is a 501 that says KV has no compare-and-set, and counts nothing (3 calls, 0 written)', async (ctx) => {
  for (let i = 0; i < 3; i++) {
    const { status, body } = await call(ctx.mf, 'Increment');
    assert.is(status, 501, JSON.stringify(body));
    assert.match(
      String(body.detail),
      /no compare-and-set: write without revision, or choose a store that has one \(local, memory, nats\)/,
    );
  }
  // Platform seam: miniflare types the binding with @cloudflare/workers-types, which micro-fn does not install.
  const namespace = (await ctx.mf.getKVNamespace('MICRO_FN_STORE')) as unknown as KvNamespace;
  assert.equal((await namespace.list({})).keys, [], 'nothing was written');
  await namespace.put('counter/count', '7');
  assert.equal(await call(ctx.mf, 'Get'), { status: 200, body: { value: 7 } }, 'Get reads the binding');
});

kv(
  'without the KV binding, a store operation is a 501 that names the binding and the wrangler.toml line',
  async (ctx) => {
    const dir = join(ctx.dir, 'unbound');
    const built = await buildWorker(counter, dir, { MICRO_STORE: 'cloudflare-kv' });
    const mf = startWorker(built, dir, { MICRO_STORE: 'cloudflare-kv' });
    try {
      const { status, body } = await call(mf, 'Get');
      assert.is(status, 501, JSON.stringify(body));
      assert.match(
        String(body.detail),
        /MICRO_STORE=cloudflare-kv needs a Workers KV namespace bound as MICRO_FN_STORE: add it to wrangler.toml \(\[\[kv_namespaces\]\] binding = "MICRO_FN_STORE"\)/,
      );
    } finally {
      await mf.dispose();
    }
  },
);

kv.run();

// ---
if (natsAvailable()) {
  const nats = suite<{ mf: Miniflare; server: NatsServer; remove(): void }>(
    'examples/counter as a Worker on the NATS store over WebSocket',
    { mf: undefined as never, server: undefined as never, remove: () => {} },
  );
  nats.before(async (ctx) => {
    const { dir, remove } = tempDir();
    ctx.remove = remove;
    ctx.server = await withTimeout(startNatsServer({ websocket: true }), 15_000, 'starting nats-server');
    const vars = { MICRO_STORE: 'nats', MICRO_STORE_ADDRESS: ctx.server.websocket! };
    ctx.mf = startWorker(await buildWorker(counter, dir, vars), dir, vars);
    await withTimeout(ctx.mf.ready, 30_000, 'workerd start');
  });
  nats.after(async (ctx) => {
    await ctx.mf?.dispose();
    await ctx.server?.cleanup();
    ctx.remove();
  });

  nats('20 concurrent increments, each its own connection over WebSocket, end at exactly 20', async (ctx) => {
    const replies = await Promise.all(Array.from({ length: 20 }, () => call(ctx.mf, 'Increment')));
    for (const r of replies) assert.is(r.status, 200, JSON.stringify(r.body));
    const values = replies.map((r) => r.body.value as number).sort((a, b) => a - b);
    const conflicts = replies.reduce((n, r) => n + (r.body.conflicts as number), 0);
    assert.equal(
      values,
      Array.from({ length: 20 }, (_, i) => i + 1),
      `values 1..20 (${conflicts} conflicts retried)`,
    );
    assert.equal(await call(ctx.mf, 'Get'), { status: 200, body: { value: 20 } });
  });

  nats(
    'a function that publishes but never touches ctx.store runs with MICRO_STORE=nats, built without the store',
    async (ctx) => {
      const { dir, remove } = tempDir();
      const vars = {
        MICRO_BROKER: 'nats',
        MICRO_BROKER_ADDRESS: ctx.server.websocket!,
        MICRO_STORE: 'nats',
        MICRO_STORE_ADDRESS: ctx.server.websocket!,
      };
      const built = await buildWorker(fixture('cloudflare'), dir, vars);
      const mf = startWorker(built, dir, vars);
      try {
        assert.not.ok(bundleText(built).includes(KV_PLUGIN_OF_NATS), 'no NATS store in the bundle');
        const res = await withTimeout(
          mf.dispatchFetch('http://worker.test/cfdemo/Greeter.Announce', {
            method: 'POST',
            body: '{"name":"Ada"}',
            headers: { 'content-type': 'application/json' },
          }),
          30_000,
          'Greeter.Announce',
        );
        assert.equal([res.status, await res.json()], [200, { published: true }]);
      } finally {
        await mf.dispose();
        remove();
      }
    },
  );

  nats.run();
}
