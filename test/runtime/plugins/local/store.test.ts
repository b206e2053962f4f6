/**
 * The local store (a client of the store `micro-fn serve` keeps) passes the store contract: a real serve runtime in
 * this process on 127.0.0.1, found through a file registry, each client its own LocalStore over HTTP. Then who may
 * use it: serve's control token, the store token serve gives its functions (Store.* only), nobody else.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '../../../../runtime/core/client.js';
import type { MicroError } from '../../../../runtime/core/errors.js';
import { createStore } from '../../../../runtime/core/store.js';
import { createHttpTransport } from '../../../../runtime/plugins/http/index.js';
import { createFileRegistry, type FileRegistry } from '../../../../runtime/plugins/local/registry.js';
import { RUNTIME_SERVICE } from '../../../../runtime/plugins/local/protocol.js';
import { createLocalStore } from '../../../../runtime/plugins/local/store.js';
import { createMemoryBroker } from '../../../../runtime/plugins/memory/broker.js';
import { LocalRuntime } from '../../../../serve/runtime.js';
import { storeContract } from '../../../contracts/store.js';
import { rejects } from '../../../helpers.js';

async function startServe(home: string, registry: FileRegistry) {
  const broker = createMemoryBroker();
  const runtime = new LocalRuntime({
    home,
    registry,
    broker,
    address: '127.0.0.1:0',
    env: {},
    pool: 0,
    concurrency: 1,
    queue: 0,
    timeout: 5000,
    memory: 64,
    ttl: 60,
    echo: false,
  });
  await runtime.start();
  return { runtime, stop: async () => (await runtime.stop(), await broker.close()) };
}

storeContract('LocalStore contract (through a micro-fn serve runtime, a client each)', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-local-store-'));
  const registry = createFileRegistry({ home });
  const serve = await startServe(home, registry);
  const transport = createHttpTransport();
  return {
    // home: the control token is read from the credential serve made there (a process of serve's user).
    open: (namespace) => {
      const client = createLocalStore({ registry, transport, home });
      return createStore(async () => client, namespace);
    },
    async cleanup() {
      await serve.stop();
      await Promise.allSettled([transport.close(), registry.close?.()]);
      rmSync(home, { recursive: true, force: true });
    },
  };
});

// ---

interface Ctx {
  home: string;
  registry?: FileRegistry;
  serve?: Awaited<ReturnType<typeof startServe>>;
  transport: ReturnType<typeof createHttpTransport>;
}

const access = suite<Ctx>('the Store.* endpoints of serve', { home: '', transport: createHttpTransport() });

access.before.each(async (ctx) => {
  ctx.home = mkdtempSync(join(tmpdir(), 'micro-fn-store-access-'));
  ctx.registry = createFileRegistry({ home: ctx.home });
});
access.after.each(async (ctx) => {
  await ctx.serve?.stop();
  ctx.serve = undefined;
  await ctx.registry?.close?.();
  rmSync(ctx.home, { recursive: true, force: true });
});
access.after(async (ctx) => ctx.transport.close());

access('take the store token serve gives its functions, which opens nothing else', async (ctx) => {
  ctx.serve = await startServe(ctx.home, ctx.registry!);
  const token = ctx.serve.runtime.store.token;
  // No home: a function process cannot read the credential; it has the token serve put in its environment.
  const store = createStore(
    async () => createLocalStore({ registry: ctx.registry!, transport: ctx.transport, token }),
    'fn',
  );
  const revision = await store.set('k', { n: 1 });
  assert.equal(await store.get('k'), { value: { n: 1 }, revision });
  const client = new Client({ registry: ctx.registry, transports: [ctx.transport] });
  const metadata = { authorization: `Bearer ${token}` };
  const err = (await rejects(() => client.call(RUNTIME_SERVICE, 'Runtime.List', {}, { metadata }))) as MicroError;
  assert.is(err.code, 401, 'the store token is not the control token');
});

access('refuse a caller with no token or a wrong one (401), and write nothing', async (ctx) => {
  ctx.serve = await startServe(ctx.home, ctx.registry!);
  for (const token of [undefined, 'wrong', `${ctx.serve.runtime.store.token}x`]) {
    const store = createStore(
      async () => createLocalStore({ registry: ctx.registry!, transport: ctx.transport, token }),
      'fn',
    );
    const err = (await rejects(() => store.set('k', 1), `token ${token}`)) as MicroError;
    assert.is(err.code, 401, `token ${token}: ${String(err)}`);
  }
  const admin = createStore(
    async () => createLocalStore({ registry: ctx.registry!, transport: ctx.transport, home: ctx.home }),
    'fn',
  );
  assert.is(await admin.get('k'), undefined, 'nothing was written');
});

access('check what a caller sends as serve would from anyone: one-line 400s, nothing written', async (ctx) => {
  ctx.serve = await startServe(ctx.home, ctx.registry!);
  const client = new Client({ registry: ctx.registry, transports: [ctx.transport] });
  const metadata = { authorization: `Bearer ${ctx.serve.runtime.store.token}` };
  const cases: [string, unknown, RegExp][] = [
    ['Store.Set', { namespace: 'fn', key: 'k', value: 'not json' }, /value is not JSON text/],
    ['Store.Set', { namespace: 'fn', key: 'k', value: { a: 1 } }, /value must be JSON text \(a string\)/],
    ['Store.Set', { namespace: 'fn', key: 'a\u0000b', value: '1' }, /control characters/],
    ['Store.Set', { namespace: 'n'.repeat(129), key: 'k', value: '1' }, /namespace is at most 128/],
    ['Store.Set', { namespace: 'fn', key: 'k', value: '1', ttl: 0 }, /ttl must be a whole number of at least 1/],
    ['Store.Set', { namespace: 'fn', key: 'k', value: '1', revision: -1 }, /revision must be a whole number/],
    ['Store.Delete', { namespace: 'fn', key: 'k', revision: 0 }, /revision must be a whole number of at least 1/],
    ['Store.Get', { namespace: 'fn' }, /key must be a non-empty string/],
    ['Store.List', { namespace: 'fn', limit: 5000 }, /limit is at most 1000/],
    ['Store.Get', [], /takes a JSON object/],
  ];
  for (const [endpoint, request, pattern] of cases) {
    const err = (await rejects(() => client.call(RUNTIME_SERVICE, endpoint, request, { metadata }))) as MicroError;
    assert.is(err.code, 400, `${endpoint} ${JSON.stringify(request)}: ${String(err)}`);
    assert.match(err.detail, pattern);
  }
  const listed = (await client.call(RUNTIME_SERVICE, 'Store.List', { namespace: 'fn' }, { metadata })) as {
    entries: unknown[];
  };
  assert.equal(listed.entries, [], `none of the ${cases.length} wrote anything`);
});

access('say that micro-fn serve keeps the local store when none is running (503)', async (ctx) => {
  const store = createStore(
    async () => createLocalStore({ registry: ctx.registry!, transport: ctx.transport, home: ctx.home }),
    'fn',
  );
  const err = (await rejects(() => store.get('k'))) as MicroError;
  assert.is(err.code, 503);
  assert.match(
    err.detail,
    /kept by `micro-fn serve`, and none is running: start it, or choose another store \(MICRO_STORE\)/,
  );
});

access.run();
