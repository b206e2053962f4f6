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
import { buildWorker, startWorker, tempDir } from './worker.js';
import type { KvNamespace } from '../../../runtime/plugins/cloudflare-kv/store.js';
import { fileURLToPath } from 'node:url';

const counter = fileURLToPath(new URL('../../../examples/counter/index.ts', import.meta.url));

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
const kv = suite<{ mf: Miniflare; remove(): void }>('examples/counter as a Worker on a Workers KV binding', {
  mf: undefined as never,
  remove: () => {},
});
kv.before(async (ctx) => {
  const { dir, remove } = tempDir();
  ctx.remove = remove;
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

  nats.run();
}
