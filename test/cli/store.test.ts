/**
 * The store end to end: a real `micro-fn serve`, examples/counter deployed with the CLI, its one-shot processes
 * (confined, another user) reaching serve's store with the token serve gave them; `micro-fn store` reading and
 * writing the same store.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, lastJson, refusesInOneLine, start, tempHome, type Running } from './helpers.js';
import { withTimeout } from '../helpers.js';
import { createStore, isConflict, type Store } from '../../runtime/core/store.js';
import { createHttpTransport } from '../../runtime/plugins/http/index.js';
import { createFileRegistry } from '../../runtime/plugins/local/registry.js';
import { RUNTIME_SERVICE } from '../../runtime/plugins/local/protocol.js';
import { createLocalStore } from '../../runtime/plugins/local/store.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const increment = async (key: string) => {
  const res = await fetch(`${gateway}/counter/Counter.Increment`, {
    method: 'POST',
    body: JSON.stringify({ key }),
    headers: { 'content-type': 'application/json' },
  });
  const body = (await res.json()) as { value: number; conflicts: number };
  assert.is(res.status, 200, JSON.stringify(body));
  return body;
};

// ---
const counter = suite('examples/counter through micro-fn serve');

counter.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(
    ['serve', '--address', '127.0.0.1:0', '--quiet', '--concurrency', '8', '--queue', '200', '--timeout', '5m'],
    env,
  );
  [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
  await ok(['deploy', 'examples/counter']);
});

counter.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
});

counter('100 concurrent one-shot invocations end at exactly 100, each value given once', async () => {
  const replies = await withTimeout(
    Promise.all(Array.from({ length: 100 }, () => increment('count'))),
    120_000,
    '100 invocations',
  );
  const values = replies.map((r) => r.value).sort((a, b) => a - b);
  const conflicts = replies.reduce((n, r) => n + r.conflicts, 0);
  assert.equal(
    values,
    Array.from({ length: 100 }, (_, i) => i + 1),
    `values 1..100 (${conflicts} conflicts retried)`,
  );
  const read = await ok(['store', 'get', 'counter', 'count', '--json']);
  assert.is((lastJson(read.stdout) as { value: number }).value, 100, 'the store holds 100');
});

counter('micro-fn store set, get, list and delete the keys the function sees', async () => {
  await ok(['store', 'set', 'counter', 'from-cli', '41']);
  assert.equal(await increment('from-cli'), { value: 42, conflicts: 0 });
  const got = await ok(['store', 'get', 'counter', 'from-cli']);
  assert.is(got.stdout, '42\n');
  assert.match(got.stderr, /^revision \d+\n$/);
  const listed = await ok(['store', 'list', 'counter', 'from', '--json']);
  const page = lastJson(listed.stdout) as { entries: { key: string; value: number }[] };
  assert.equal(
    page.entries.map((e) => [e.key, e.value]),
    [['from-cli', 42]],
  );
  await ok(['store', 'delete', 'counter', 'from-cli']);
  const gone = await cli(['store', 'get', 'counter', 'from-cli'], env);
  assert.is(gone.code, 1);
  assert.match(gone.stderr, /no key from-cli in counter/);
});

counter('micro-fn store set --revision with a stale revision is a conflict and changes nothing', async () => {
  const first = lastJson((await ok(['store', 'set', 'counter', 'cas', '1', '--json'])).stdout) as { revision: number };
  await ok(['store', 'set', 'counter', 'cas', '2', '--revision', String(first.revision)]);
  const stale = await cli(['store', 'set', 'counter', 'cas', '3', '--revision', String(first.revision)], env);
  assert.is(stale.code, 1);
  assert.match(
    stale.stderr,
    /counter\/cas is at revision \d+, not at revision \d+: read it again and retry \(409 Conflict\)/,
  );
  assert.is((await ok(['store', 'get', 'counter', 'cas'])).stdout, '2\n');
});

counter('micro-fn store refuses a bad value, key or action with one line', async () => {
  await refusesInOneLine(
    [
      [['store', 'set', 'counter', 'k', 'bare-word'], /the value is not JSON .*a string needs its quotes/],
      [['store', 'get', 'counter', 'a\nb'], /control characters/],
      [['store', 'fetch', 'counter', 'k'], /unknown store action "fetch": use get, set, list or delete/],
      [['store', 'get', 'counter'], /store get needs a key/],
    ],
    env,
  );
});

counter.run();

// ---
const noServe = suite('micro-fn store without micro-fn serve');

noServe('says that micro-fn serve keeps the local store, and how to choose another', async () => {
  const home = tempHome();
  try {
    const r = await cli(['store', 'get', 'counter', 'count'], { MICRO_FN_HOME: home.home });
    assert.is(r.code, 1);
    assert.match(r.stderr, /the local store is kept by `micro-fn serve`, and none is running/);
  } finally {
    home.cleanup();
  }
});

noServe.run();

// ---
const shared = suite<{ home?: ReturnType<typeof tempHome>; serves: Running[] }>(
  'the local store shared by serve processes on one MICRO_FN_HOME',
  { serves: [] },
);

const startOn = async (home: string): Promise<Running> => {
  const running = start(['serve', '--address', '127.0.0.1:0', '--quiet', '--pool', '0'], { MICRO_FN_HOME: home });
  await running.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/);
  return running;
};

shared.before.each((ctx) => {
  ctx.home = tempHome();
  ctx.serves = [];
});
shared.after.each(async (ctx) => {
  for (const s of ctx.serves) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
    s.child.kill('SIGTERM');
    await s.exited(10_000).catch(() => s.kill());
  }
  ctx.home?.cleanup();
});

shared('50 concurrent compare-and-set increments spread over 2 serve processes end at exactly 50', async (ctx) => {
  const home = ctx.home!.home;
  ctx.serves.push(await startOn(home), await startOn(home));
  const registry = createFileRegistry({ home });
  const transport = createHttpTransport();
  try {
    const nodes = (await registry.getService(RUNTIME_SERVICE)).flatMap((s) => s.nodes);
    assert.is(nodes.length, 2, 'two serves registered: each call goes to either');
    let conflicts = 0;
    const increment = async (store: Store) => {
      for (;;) {
        const current = await store.get<number>('n');
        try {
          return await store.set('n', (current?.value ?? 0) + 1, { revision: current?.revision ?? 0 });
        } catch (err) {
          if (!isConflict(err)) throw err;
          conflicts++;
        }
      }
    };
    const clients = Array.from({ length: 50 }, () => {
      const backend = createLocalStore({ registry, transport, home });
      return createStore(async () => backend, 'shared');
    });
    await withTimeout(Promise.all(clients.map(increment)), 120_000, '50 increments');
    const final = await clients[0]!.get<number>('n');
    assert.is(
      final?.value,
      50,
      `50 increments over 2 serves (${conflicts} conflicts retried) ended at ${final?.value}`,
    );
  } finally {
    await transport.close();
    await registry.close?.();
  }
});

shared('a set micro-fn store acknowledged survives a SIGKILL of serve', async (ctx) => {
  const home = ctx.home!.home;
  const first = await startOn(home);
  ctx.serves.push(first);
  const env = { MICRO_FN_HOME: home };
  const set = await cli(['store', 'set', 'counter', 'kept', '{"n":7}', '--json'], env);
  assert.is(set.code, 0, set.stderr);
  const killed = new Promise((resolve) => first.child.once('exit', resolve));
  first.child.kill('SIGKILL');
  await withTimeout(killed, 10_000, 'serve exiting on SIGKILL');
  ctx.serves.push(await startOn(home));
  const got = await cli(['store', 'get', 'counter', 'kept', '--json'], env);
  assert.is(got.code, 0, got.stderr);
  const entry = lastJson(got.stdout) as { value: unknown; revision: number };
  assert.equal(entry.value, { n: 7 });
  assert.is(entry.revision, (lastJson(set.stdout) as { revision: number }).revision);
});

shared.run();
