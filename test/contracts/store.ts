/**
 * The Store contract: every store plugin runs this suite with its own factory. It checks what `StoreGuarantees`
 * promise: a plugin that says `compareAndSet` passes the concurrency tests; one that says `eventual` would have the
 * read-after-write tests skipped (and says so), as Workers KV will.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MicroError } from '../../runtime/core/errors.js';
import { STORE_CONFLICT, STORE_ERROR, isConflict, type Store, type StoreGuarantees } from '../../runtime/core/store.js';
import { eventually, rejects, withTimeout } from '../helpers.js';

/** What a plugin promises; the suite checks it reports exactly this, and runs the tests it makes hold. */
export interface StoreContractOptions {
  /** Default: both, strong. */
  guarantees?: StoreGuarantees;
}

export interface StoreFixture {
  /**
   * A store of `namespace`. Each call gives a client of its own where the plugin has clients (another connection to
   * serve, say), so that concurrent tests run from parallel clients.
   */
  open(namespace: string): Store;
  /** Closes the stores and whatever the factory opened for them (serve, folders). */
  cleanup(): Promise<void>;
}

interface Context {
  fixture?: StoreFixture;
  /** A namespace of this test's own. */
  ns: string;
}

const conflictOf = async (fn: () => Promise<unknown>, what: string): Promise<MicroError> => {
  const err = (await rejects(fn, `${what}: expected a conflict`)) as MicroError;
  assert.ok(isConflict(err), `${what}: expected ${STORE_CONFLICT}, got ${String(err)}`);
  assert.is(err.code, 409);
  return err;
};

const badRequest = async (fn: () => Promise<unknown>, what: string, pattern: RegExp): Promise<void> => {
  const err = (await rejects(fn, `${what}: expected a 400`)) as MicroError;
  assert.is(err.code, 400, `${what}: ${String(err)}`);
  assert.is(err.id, STORE_ERROR);
  assert.match(err.detail, pattern);
  assert.not.match(err.detail, /\n/, 'one line');
};

let tests = 0;

/**
 * Runs the suite against the plugin `create` opens. A test that needs compare-and-set or strong consistency is
 * skipped (uvu counts it, and the name says why) for a plugin that does not promise it, as Workers KV will not.
 */
export function storeContract(
  name: string,
  create: () => Promise<StoreFixture>,
  options: StoreContractOptions = {},
): void {
  const promised = options.guarantees ?? { compareAndSet: true, consistency: 'strong' };
  const base = suite<Context>(name, { ns: '' });
  const test = base;
  const strong = promised.consistency === 'strong' ? base : base.skip;
  const cas = promised.compareAndSet && promised.consistency === 'strong' ? base : base.skip;
  const store = (ctx: Context) => ctx.fixture!.open(ctx.ns);

  test.before.each(async (ctx) => {
    ctx.fixture = await withTimeout(create(), 20_000, 'the store fixture');
    ctx.ns = `contract-${++tests}-${Date.now().toString(36)}`;
  });
  test.after.each(async (ctx) => {
    await ctx.fixture?.cleanup();
    ctx.fixture = undefined;
  });

  test('says what it guarantees, as the suite was told (the tests that need more are skipped)', async (ctx) => {
    assert.equal(await store(ctx).guarantees(), promised);
  });

  test('get of a key never set is undefined', async (ctx) => {
    assert.is(await store(ctx).get('absent'), undefined);
  });

  strong('set then get gives back each JSON value with the revision set returned', async (ctx) => {
    const s = store(ctx);
    const values = [{ a: [1, 'two', null], b: { c: true } }, [1, 2], 'text ✓', 42.5, null, false];
    for (const [i, value] of values.entries()) {
      const revision = await s.set(`k${i}`, value);
      assert.ok(revision > 0);
      assert.equal(await s.get(`k${i}`), { value, revision }, `value ${i}`);
    }
  });

  cas('every write of a key gives a higher revision, also a set after a delete (never reused)', async (ctx) => {
    const s = store(ctx);
    const first = await s.set('k', 1);
    const second = await s.set('k', 2);
    assert.ok(second > first, `${second} > ${first}`);
    assert.is(await s.delete('k'), true);
    assert.is(await s.delete('k'), false, 'a second delete finds nothing');
    assert.is(await s.get('k'), undefined);
    const third = await s.set('k', 3);
    assert.ok(third > second, `after delete: ${third} > ${second}`);
    // The revision before the delete does not match the key as it is now.
    await conflictOf(() => s.set('k', 4, { revision: second }), 'the revision from before the delete');
  });

  cas(
    'compare-and-set: the current revision wins, a stale one and 0 on a present key are 409 conflicts',
    async (ctx) => {
      const s = store(ctx);
      const created = await s.set('k', 'a', { revision: 0 });
      await conflictOf(() => s.set('k', 'b', { revision: 0 }), 'revision 0 on a present key');
      const updated = await s.set('k', 'b', { revision: created });
      assert.ok(updated > created);
      const err = await conflictOf(() => s.set('k', 'c', { revision: created }), 'a stale revision');
      assert.match(err.detail, /read it again and retry/);
      assert.equal(await s.get('k'), { value: 'b', revision: updated }, 'the conflict wrote nothing');
      await conflictOf(() => s.set('absent', 'x', { revision: updated }), 'a revision on an absent key');
    },
  );

  cas('delete with a stale revision is a 409 and keeps the key; with the current one it deletes', async (ctx) => {
    const s = store(ctx);
    const first = await s.set('k', 1);
    const second = await s.set('k', 2);
    await conflictOf(() => s.delete('k', { revision: first }), 'a stale revision');
    assert.equal(await s.get('k'), { value: 2, revision: second });
    assert.is(await s.delete('k', { revision: second }), true);
    await conflictOf(() => s.delete('k', { revision: second }), 'a revision on an absent key');
  });

  cas('50 concurrent compare-and-set increments from 50 clients end at exactly 50', async (ctx) => {
    const clients = Array.from({ length: 50 }, () => ctx.fixture!.open(ctx.ns));
    let conflicts = 0;
    const increment = async (s: Store) => {
      for (let attempt = 0; attempt < 1000; attempt++) {
        const current = await s.get<number>('counter');
        try {
          return await s.set('counter', (current?.value ?? 0) + 1, { revision: current?.revision ?? 0 });
        } catch (err) {
          if (!isConflict(err)) throw err;
          conflicts++;
        }
      }
      throw new Error('1000 conflicts in a row');
    };
    const revisions = await withTimeout(Promise.all(clients.map(increment)), 60_000, '50 increments');
    const final = await store(ctx).get<number>('counter');
    assert.is(final?.value, 50, `50 increments (${conflicts} conflicts retried) ended at ${final?.value}`);
    assert.is(new Set(revisions).size, 50, 'each increment wrote a revision of its own');
  });

  strong('list pages through the keys of a prefix in key order, each once, with a cursor', async (ctx) => {
    const s = store(ctx);
    const keys = Array.from({ length: 25 }, (_, i) => `a/${String(i).padStart(2, '0')}`);
    for (const key of [...keys].reverse()) await s.set(key, key);
    for (let i = 0; i < 5; i++) await s.set(`b/${i}`, i);
    await s.set('a', 'not under a/');
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await s.list('a/', { limit: 10, cursor });
      sizes.push(page.entries.length);
      for (const e of page.entries) {
        assert.is(e.value, e.key, 'the value comes with its key');
        assert.ok(e.revision > 0);
        seen.push(e.key);
      }
      cursor = page.cursor;
    } while (cursor !== undefined && sizes.length < 10);
    assert.equal(seen, keys, '25 keys under a/, in order, each once');
    assert.equal(sizes.slice(0, 3), [10, 10, 5]);
    assert.is((await s.list('', { limit: 1000 })).entries.length, 31, 'every key with the empty prefix');
    assert.is((await s.list('c/')).entries.length, 0);
  });

  strong('namespaces are separate: the same key holds a value of its own in each', async (ctx) => {
    const a = store(ctx);
    const b = a.namespace(`${ctx.ns}-other`);
    assert.is(b.name, `${ctx.ns}-other`);
    await a.set('k', 'a');
    await b.set('k', 'b');
    assert.is((await a.get('k'))?.value, 'a');
    assert.is((await b.get('k'))?.value, 'b');
    assert.equal(
      (await b.list('')).entries.map((e) => e.key),
      ['k'],
    );
    await a.delete('k');
    assert.is((await b.get('k'))?.value, 'b');
  });

  strong('a key past its TTL is gone for get and list; one within it stays', async (ctx) => {
    const s = store(ctx);
    await s.set('short', 1, { ttl: 200 });
    await s.set('long', 2, { ttl: 600_000 });
    await eventually(async () => (await s.get('short')) === undefined, 5000, 'the short key expiring', 50);
    assert.equal(
      (await s.list('')).entries.map((e) => e.key),
      ['long'],
    );
    assert.is((await s.get('long'))?.value, 2);
    // An expired key is absent for compare-and-set too: 0 creates it again.
    assert.ok((await s.set('short', 3, { revision: 0 })) > 0);
    // A set without ttl makes a key with one permanent.
    await s.set('long', 4);
    assert.is((await s.get('long'))?.value, 4);
  });

  test('refuses bad keys, namespaces, values and options with one-line 400s', async (ctx) => {
    const s = store(ctx);
    await badRequest(() => s.get(''), 'an empty key', /non-empty/);
    await badRequest(() => s.set('a\nb', 1), 'a line break', /control characters/);
    await badRequest(() => s.get('x'.repeat(1025)), 'a long key', /at most 1024 bytes/);
    await badRequest(() => s.set('k', undefined), 'undefined', /must be JSON/);
    await badRequest(() => s.set('k', 10n), 'a BigInt', /must be JSON/);
    await badRequest(() => s.set('k', 1, { ttl: -5 }), 'a negative ttl', /ttl/);
    await badRequest(() => s.set('k', 1, { revision: 1.5 }), 'a fractional revision', /revision/);
    await badRequest(() => s.list('', { limit: 5000 }), 'a huge limit', /limit/);
    assert.throws(() => s.namespace(''), /non-empty/);
    assert.is(await s.get('k'), undefined, 'nothing was written');
  });

  base.run();
}
