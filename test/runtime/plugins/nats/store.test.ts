/**
 * The NATS store (a JetStream KV bucket) passes the store contract against a real nats-server, each client a store
 * on a connection of its own; then what is its own: how keys are stored, TTLs in the value, failures.
 */
import type { KV, NatsConnection } from 'nats';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../../runtime/core/config.js';
import { isMicroError, type MicroError } from '../../../../runtime/core/errors.js';
import { MAX_VALUE_BYTES, createStore, isConflict } from '../../../../runtime/core/store.js';
import { connectNats } from '../../../../runtime/plugins/nats/connection.js';
import { NatsStore, createNatsStore, fromStoreToken, storeToken } from '../../../../runtime/plugins/nats/store.js';
import { storeContract } from '../../../contracts/store.js';
import { eventually, rejects, withTimeout } from '../../../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';

/** One nats-server for the whole file (started on first use, stopped by the last suite's `after`). */
let server: Promise<NatsServer> | undefined;
let admin: Promise<NatsConnection> | undefined;
const natsServer = () => (server ??= startNatsServer());
const adminConnection = async () =>
  (admin ??= connectNats({ address: (await natsServer()).url, name: 'store test admin' }));
let buckets = 0;
const freshBucket = () => `store_${process.pid}_${++buckets}`;

async function destroyBucket(bucket: string): Promise<void> {
  const jsm = await (await adminConnection()).jetstreamManager();
  await jsm.streams.delete(`KV_${bucket}`).catch(() => false);
}

/** The bucket as nats.js sees it, for what the store wrote there. */
async function rawBucket(bucket: string): Promise<KV> {
  return (await adminConnection()).jetstream().views.kv(bucket);
}

async function stopEverything(): Promise<void> {
  const [connection, nats] = [admin, server];
  [admin, server] = [undefined, undefined];
  await (await connection?.catch(() => undefined))?.close();
  await (await nats?.catch(() => undefined))?.cleanup();
}

if (natsAvailable()) {
  storeContract('NatsStore contract (a real nats-server, a connection per client)', async () => {
    const { url } = await natsServer();
    const bucket = freshBucket();
    const stores: NatsStore[] = [];
    return {
      open(namespace) {
        const backend = createNatsStore({ address: url, bucket });
        stores.push(backend);
        return createStore(async () => backend, namespace);
      },
      async cleanup() {
        await withTimeout(Promise.all(stores.map((s) => s.close())), 10_000, 'closing the stores');
        await withTimeout(destroyBucket(bucket), 10_000, 'deleting the bucket');
      },
    };
  });

  interface Context {
    url: string;
    bucket: string;
    stores: NatsStore[];
    open(options?: { now?: () => number }): NatsStore;
  }
  const NatsStoreSuite = suite<Context>('NatsStore', {} as Context);
  NatsStoreSuite.before(async (ctx) => {
    ctx.url = (await withTimeout(natsServer(), 15_000, 'starting nats-server')).url;
  });
  NatsStoreSuite.before.each((ctx) => {
    ctx.bucket = freshBucket();
    ctx.stores = [];
    ctx.open = (options = {}) => {
      const store = createNatsStore({ address: ctx.url, bucket: ctx.bucket, ...options });
      ctx.stores.push(store);
      return store;
    };
  });
  NatsStoreSuite.after.each(async (ctx) => {
    await withTimeout(Promise.all(ctx.stores.map((s) => s.close())), 10_000, 'closing the stores');
    await withTimeout(destroyBucket(ctx.bucket), 10_000, 'deleting the bucket');
  });
  NatsStoreSuite.after(() => withTimeout(stopEverything(), 20_000, 'stopping nats-server'));

  NatsStoreSuite(
    'stores any key the contract takes (dots, =, wildcards, spaces, a 1024-byte UTF-8 key) as one KV token each',
    async (ctx) => {
      const store = createStore(async () => ctx.open(), 'ns.with dots');
      const keys = ['a.b', 'a=b', '>', '*', 'a b/c', '.leading', 'trailing.', 'é✓', 'é'.repeat(512), 'plain-key_1/x'];
      for (const [i, key] of keys.entries()) await store.set(key, i);
      for (const [i, key] of keys.entries()) assert.is((await store.get(key))?.value, i, JSON.stringify(key));
      const listed = (await store.list('', { limit: 1000 })).entries.map((e) => e.key);
      assert.equal(listed, [...keys].sort(), 'listed, decoded and in key order');
      assert.equal(
        (await store.list('a')).entries.map((e) => e.key),
        ['a b/c', 'a.b', 'a=b'],
      );
      // As NATS's own tooling lists them: <namespace>.<key>, plain characters kept.
      const raw: string[] = [];
      for await (const key of await (await rawBucket(ctx.bucket)).keys()) raw.push(key);
      assert.ok(raw.includes('ns=2Ewith=20dots.plain-key_1/x'), raw.join(' '));
      assert.ok(raw.includes('ns=2Ewith=20dots.a=2Eb'), raw.join(' '));
      assert.is(raw.length, keys.length);
    },
  );

  NatsStoreSuite('storeToken and fromStoreToken round-trip; a token it did not write decodes to undefined', () => {
    for (const text of ['a', 'a.b=c', '=', 'é✓ x', '\u{1F600}', '-_/AZaz09'])
      assert.is(fromStoreToken(storeToken(text)), text, text);
    assert.is(storeToken('-_/AZaz09'), '-_/AZaz09');
    assert.is(fromStoreToken('=zz'), undefined);
    assert.is(fromStoreToken('=C3'), undefined, 'half a UTF-8 character');
  });

  NatsStoreSuite(
    'a TTL travels in the value (@expires); a read past it finds nothing and deletes it unless written since',
    async (ctx) => {
      let now = 1_000_000;
      const backend = ctx.open({ now: () => now });
      const store = createStore(async () => backend, 'ttl');
      const revision = await store.set('k', { a: 1 }, { ttl: 5000 });
      await store.set('forever', 1);
      const kv = await rawBucket(ctx.bucket);
      assert.is((await kv.get('ttl.k'))?.string(), '@1005000\n{"a":1}');
      assert.is((await kv.get('ttl.forever'))?.string(), '1', 'a value without a TTL is its JSON alone');
      now += 4999;
      assert.equal(await store.get('k'), { value: { a: 1 }, revision });
      now += 1;
      assert.is(await store.get('k'), undefined);
      await eventually(async () => (await kv.get('ttl.k'))?.operation === 'DEL', 5000, 'the expired key deleted', 20);
      assert.is(await store.delete('k'), false, 'an expired key is absent for delete');
      assert.is((await store.get('forever'))?.value, 1, 'a key without a TTL never expires');
    },
  );

  NatsStoreSuite(
    'revision 0 replaces an expired key only if it is still the one there: 20 racing creates and 5 sweeping reads, 1 wins, 19 conflicts',
    async (ctx) => {
      let now = 1_000_000;
      const store = createStore(async () => ctx.open({ now: () => now }), 'ttl');
      await store.set('k', 'old', { ttl: 10 });
      now += 10;
      const racers = Array.from({ length: 20 }, () => createStore(async () => ctx.open({ now: () => now }), 'ttl'));
      await Promise.all(racers.map((r) => r.get('absent'))); // every racer connected before the race
      // Readers at the same time delete the expired value (their sweep): a create that lost to that tries again.
      const sweeps = racers.slice(0, 5).map((r) => r.get('k'));
      const results = await Promise.allSettled(racers.map((r, i) => r.set('k', i, { revision: 0 })));
      await Promise.all(sweeps);
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      assert.is(
        results.length - lost.length,
        1,
        `1 of 20 creates won: ${lost
          .filter((e) => !isConflict(e))
          .map(String)
          .join('; ')}`,
      );
      assert.ok(lost.every(isConflict), 'the others are conflicts');
      assert.is(typeof (await store.get<number>('k'))!.value, 'number');
    },
  );

  NatsStoreSuite(
    'a value of the contract’s 1 MiB is stored; one past the server’s max_payload with its stamp is a one-line 413',
    async (ctx) => {
      const store = createStore(async () => ctx.open(), 'big');
      const full = 'x'.repeat(MAX_VALUE_BYTES - 2); // its JSON: 1 MiB, nats-server's default max_payload
      await store.set('k', full);
      assert.is((await store.get<string>('k'))?.value.length, full.length);
      const err = (await rejects(() => store.set('k', full, { ttl: 60_000 }))) as MicroError;
      assert.is(err.code, 413, String(err));
      assert.match(
        err.detail,
        /^cannot set big\/k: the value with its expiry stamp is more than this NATS server's max_payload/,
      );
      assert.not.match(err.detail, /\n/);
      assert.is((await store.get<string>('k'))?.value.length, full.length, 'the first value stays');
    },
  );

  NatsStoreSuite('a conflict names the revision the key is at now', async (ctx) => {
    const store = createStore(async () => ctx.open(), 'c');
    const first = await store.set('k', 1);
    const second = await store.set('k', 2);
    const err = (await rejects(() => store.set('k', 3, { revision: first }))) as MicroError;
    assert.ok(isConflict(err), String(err));
    assert.match(err.detail, new RegExp(`c/k is at revision ${second}, not at revision ${first}`));
  });

  NatsStoreSuite(
    'keeps its keys across a nats-server restart, and its connection comes back by itself',
    async (ctx) => {
      const nats = await startNatsServer();
      try {
        const backend = createNatsStore({ address: nats.url, bucket: ctx.bucket });
        ctx.stores.push(backend);
        const store = createStore(async () => backend, 'restart');
        const revision = await store.set('k', 'before');
        await withTimeout(nats.restart(), 15_000, 'restarting nats-server');
        const read = () => withTimeout(store.get('k'), 5000, 'get').catch(() => undefined);
        await eventually(async () => (await read())?.value === 'before', 20_000, 'the key read back', 100);
        // Right after a restart JetStream may still be recovering its streams: a write may time out once.
        let next = 0;
        await eventually(
          () =>
            store.set('k', 'after', { revision }).then(
              (r) => ((next = r), true),
              (err: unknown) => (isConflict(err) ? Promise.reject(err) : false),
            ),
          20_000,
          'a compare-and-set after the restart',
          200,
        );
        assert.equal(await store.get('k'), { value: 'after', revision: next });
      } finally {
        await nats.cleanup();
      }
    },
  );

  NatsStoreSuite(
    'with NATS gone, a read is a retryable 503/504 and a write that may have applied is not retryable',
    async (ctx) => {
      const nats = await startNatsServer();
      try {
        const backend = createNatsStore({ address: nats.url, bucket: ctx.bucket });
        ctx.stores.push(backend);
        const store = createStore(async () => backend, 'down');
        await store.set('k', 1);
        await nats.stop();
        const read = (await withTimeout(
          rejects(() => store.get('k')),
          20_000,
          'the read',
        )) as MicroError;
        assert.ok(isMicroError(read) && [503, 504].includes(read.code) && read.retryable, String(read));
        const write = (await withTimeout(
          rejects(() => store.set('k', 2)),
          20_000,
          'the write',
        )) as MicroError;
        assert.ok(isMicroError(write) && [503, 504].includes(write.code) && !write.retryable, String(write));
      } finally {
        await nats.cleanup();
      }
    },
  );

  NatsStoreSuite(
    'refuses a bad bucket or address with a ConfigError; a missing server is a retryable 503',
    async () => {
      assert.throws(
        () => createNatsStore({ address: 'nats://127.0.0.1:4222', bucket: 'a.b' }),
        (e: unknown) => e instanceof ConfigError,
      );
      assert.throws(
        () => createNatsStore({ address: 'http://x' }),
        (e: unknown) => e instanceof ConfigError,
      );
      assert.throws(
        () => createNatsStore({} as never),
        (e: unknown) => e instanceof ConfigError,
      );
      assert.is(createNatsStore({ address: 'nats://127.0.0.1:4222' }).bucket, 'micro_fn_store');
      const backend = createNatsStore({ address: 'nats://127.0.0.1:1' });
      try {
        const err = (await withTimeout(
          rejects(() => backend.get('ns', 'k')),
          10_000,
          'the failed connection',
        )) as MicroError;
        assert.ok(
          isMicroError(err) && err.code === 503 && err.retryable && /cannot connect to NATS/.test(err.detail),
          String(err),
        );
      } finally {
        await backend.close();
      }
    },
  );

  NatsStoreSuite.run();
}
