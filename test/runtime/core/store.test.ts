/** The store contract's shared part: what createStore checks for every plugin, and the conflict error. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MicroError, parseError } from '../../../runtime/core/errors.js';
import type { Context } from '../../../runtime/core/context.js';
import { Metadata } from '../../../runtime/core/metadata.js';
import { Runner } from '../../../runtime/core/runner.js';
import {
  STORE_CONFLICT,
  checkKey,
  conflict,
  createStore,
  encodeValue,
  isConflict,
  type StoreBackend,
} from '../../../runtime/core/store.js';
import { createMemoryStore } from '../../../runtime/plugins/memory/store.js';
import { rejects } from '../../helpers.js';
import { storeContract } from '../../contracts/store.js';

// ---
const create = suite('createStore');

create('opens the plugin on the first operation, once, and again after a failed open', async () => {
  let opens = 0;
  let fail = true;
  const backend = createMemoryStore();
  const store = createStore(async () => {
    opens++;
    if (fail) throw new Error('serve is down');
    return backend;
  }, 'fn');
  assert.is(opens, 0, 'made, not opened');
  await rejects(() => store.get('k'));
  fail = false;
  await store.set('k', 1);
  await store.namespace('other').get('k');
  assert.is(opens, 2, 'a failed open is tried again; then kept, also for another namespace');
});

/** The memory store, saying it is eventually consistent without compare-and-set: the shape Workers KV will have. */
function eventualStore(): StoreBackend {
  const inner = createMemoryStore();
  return {
    guarantees: { compareAndSet: false, consistency: 'eventual' },
    get: (n, k) => inner.get(n, k),
    set: (n, k, v, o) => inner.set(n, k, v, o),
    delete: (n, k, o) => inner.delete(n, k, o),
    list: (n, p, o) => inner.list(n, p, o),
  };
}

create(
  'refuses revision with a 501 on a plugin without compare-and-set (Workers KV), and writes without it',
  async () => {
    const eventual = eventualStore();
    const store = createStore(async () => eventual, 'fn');
    for (const op of [() => store.set('k', 1, { revision: 0 }), () => store.delete('k', { revision: 3 })]) {
      const err = (await rejects(op)) as MicroError;
      assert.is(err.code, 501);
      assert.match(err.detail, /has no compare-and-set: write without revision/);
    }
    assert.ok((await store.set('k', 1)) > 0);
    assert.equal(await store.guarantees(), { compareAndSet: false, consistency: 'eventual' });
  },
);

create.run();

// ---
const conflicts = suite('isConflict');

conflicts('tells a lost compare-and-set, also read off the wire, from any other 409 or error', () => {
  const err = conflict('fn', 'k', 3, 4);
  assert.ok(isConflict(err));
  assert.is(err.retryable, false, 'the client never sends it again: reading again is the caller');
  assert.match(err.detail, /^fn\/k is at revision 4, not at revision 3: read it again and retry$/);
  assert.ok(isConflict(parseError(JSON.stringify(err.toJSON()))), 'off the wire');
  assert.not.ok(isConflict(new MicroError('fn', 409, 'other conflict')));
  assert.not.ok(isConflict(new Error(STORE_CONFLICT)));
});

conflicts.run();

// ---
const encode = suite('encodeValue');

encode('encodes JSON values; refuses undefined, functions, cycles and values over 1 MiB', () => {
  assert.is(encodeValue({ a: [1, null] }), '{"a":[1,null]}');
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  for (const bad of [undefined, () => 1, cycle]) assert.throws(() => encodeValue(bad), /must be JSON/);
  assert.throws(() => encodeValue('x'.repeat(1024 * 1024)), /at most 1048576 bytes/);
  assert.is(encodeValue('x'.repeat(1024 * 1024 - 2)).length, 1024 * 1024, 'exactly 1 MiB with its quotes');
});

encode('checkKey counts a key in UTF-8 bytes: 1024 of them at most, whatever its length in characters', () => {
  for (const ok of ['x'.repeat(1024), 'é'.repeat(512), '✓'.repeat(341) + 'x', '\u{1F600}'.repeat(256)])
    assert.not.throws(() => checkKey(ok), `${ok.length} characters`);
  for (const bad of ['x'.repeat(1025), 'é'.repeat(513), '✓'.repeat(342), '\u{1F600}'.repeat(257)])
    assert.throws(() => checkKey(bad), /at most 1024 bytes/, `${bad.length} characters`);
});

encode.run();

// ---
storeContract(
  'store contract of a plugin that promises less (eventual, no compare-and-set): what it does not promise is skipped',
  async () => {
    const backend = eventualStore();
    return { open: (namespace) => createStore(async () => backend, namespace), cleanup: async () => {} };
  },
  { guarantees: { compareAndSet: false, consistency: 'eventual' } },
);

// ---
const ctxStore = suite('ctx.store');

const invoke = (runner: Runner, endpoint: string) =>
  runner.invoke({
    id: crypto.randomUUID(),
    service: 'fn',
    endpoint,
    contentType: 'application/json',
    body: new TextEncoder().encode('{}'),
    metadata: new Metadata(),
  });

ctxStore(
  'opens the store plugin on a handler’s first operation only: 0 opens for 3 invocations that never touch it, 1 for one that does',
  async () => {
    let opens = 0;
    const backend = createMemoryStore();
    const runner = new Runner(
      {
        name: 'fn',
        handlers: {
          S: {
            Plain: () => ({ ok: true }),
            Count: async (_req: unknown, ctx: Context) => {
              const store = ctx.store;
              assert.is(store.name, 'fn', "the function's own namespace");
              await store.set('k', 1);
              await store.namespace('shared').set('k', 2);
              return { value: (await store.get('k'))?.value };
            },
          },
        },
      },
      {
        env: {},
        plugins: async () => ({
          transports: [],
          store: async () => (opens++, backend),
          close: async () => {},
        }),
      },
    );
    for (let i = 0; i < 3; i++) assert.is((await invoke(runner, 'S.Plain')).status, 200);
    assert.is(opens, 0, 'never opened for handlers that do not use it');
    const reply = await invoke(runner, 'S.Count');
    assert.is(new TextDecoder().decode(reply.body), '{"value":1}');
    assert.is(opens, 1, 'opened once for both namespaces');
    assert.equal(await backend.get('shared', 'k'), { value: '2', revision: 2 });
  },
);

ctxStore('is a 501 that names MICRO_STORE on a host with no store (a Worker without one)', async () => {
  const runner = new Runner(
    {
      name: 'fn',
      handlers: { S: { Get: async (_req: unknown, ctx: Context) => ctx.store.get('k') } },
    },
    { env: {}, plugins: async () => ({ transports: [], close: async () => {} }) },
  );
  const reply = await invoke(runner, 'S.Get');
  assert.is(reply.status, 501);
  assert.match(
    new TextDecoder().decode(reply.body),
    /no store is configured here: set MICRO_STORE \(memory, local, nats, cloudflare-kv\)/,
  );
});

ctxStore.run();
