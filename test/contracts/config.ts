/**
 * The config contract: every config plugin (the `kv` layer of `ctx.config`) runs this suite with its own factory.
 * A writer (another client of the plugin: another connection, another process's serve client) changes a function's
 * keys while a reader holds a snapshot: the snapshot does not change, a fresh one sees the change, and a watcher sees
 * it within a bounded wait; a key deleted from the `kv` layer falls back to the lower layer's value.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CONFIG_NAMESPACE,
  createConfig,
  readKv,
  type ConfigBackend,
  type ConfigChange,
} from '../../runtime/core/function-config.js';
import { withTimeout } from '../helpers.js';

export interface ConfigFixture {
  /** A client of the plugin; `host` 1 is another one (another connection or process) when the plugin has more. */
  backend(host: number): ConfigBackend;
  cleanup(): Promise<void>;
}

/** Writes the `kv` layer of `service` as `micro-fn config set` does: the whole object, by compare-and-set. */
export async function writeKv(backend: ConfigBackend, service: string, values: Record<string, unknown>): Promise<void> {
  const { revision } = await readKv(backend, service);
  await backend.set(CONFIG_NAMESPACE, service, JSON.stringify(values), { revision });
}

let n = 0;
const fresh = () => `fn-${process.pid}-${++n}`;

export function configContract(name: string, create: () => Promise<ConfigFixture>): void {
  const test = suite<{ fixture: ConfigFixture }>(name, { fixture: undefined as never });
  test.before(async (ctx) => void (ctx.fixture = await create()));
  test.after(async (ctx) => await ctx.fixture?.cleanup());

  const reader = (ctx: { fixture: ConfigFixture }, service: string, signal?: AbortSignal) =>
    createConfig({
      service,
      env: { GREETING: 'env', PORT: '80', MICRO_STORE: 'local' },
      file: { GREETING: 'file', LIMITS: { burst: 5 } },
      open: async () => ctx.fixture.backend(0),
      signal: () => signal,
    });

  test('layers: the environment, then config.json, then the kv layer, each key from the highest that has it', async (ctx) => {
    const service = fresh();
    await writeKv(ctx.fixture.backend(1), service, { PORT: 8080 });
    const snapshot = await reader(ctx, service).snapshot();
    assert.equal(
      snapshot.keys().map((k) => [k, snapshot.source(k), snapshot.get(k)]),
      [
        ['GREETING', 'file', 'file'],
        ['LIMITS', 'file', { burst: 5 }],
        ['PORT', 'kv', 8080],
      ],
      'MICRO_* variables are not configuration',
    );
    assert.is(snapshot.number('PORT', 1), 8080);
  });

  test('an invocation keeps its snapshot while the kv layer changes (3 writes); a new one sees the last', async (ctx) => {
    const service = fresh();
    const writer = ctx.fixture.backend(1);
    await writeKv(writer, service, { GREETING: 'kv 0' });
    const config = reader(ctx, service);
    assert.is(await config.string('GREETING'), 'kv 0');
    for (let i = 1; i <= 3; i++) {
      await writeKv(writer, service, { GREETING: `kv ${i}` });
      assert.is(await config.string('GREETING'), 'kv 0', `after write ${i}`);
    }
    assert.is(await reader(ctx, service).string('GREETING'), 'kv 3');
  });

  test('a watcher sees a change, and a deleted key falling back to config.json, within a bounded wait', async (ctx) => {
    const service = fresh();
    const writer = ctx.fixture.backend(1);
    const stop = new AbortController();
    const config = reader(ctx, service, stop.signal);
    assert.is(await config.string('GREETING'), 'file');
    const seen: ConfigChange[] = [];
    const watching = (async () => {
      for await (const change of config.watch('', { interval: 50 })) {
        seen.push(change);
        if (seen.length === 2) return;
      }
    })();
    try {
      const started = Date.now();
      await writeKv(writer, service, { GREETING: 'kv' });
      await withTimeout(
        (async () => {
          while (seen.length < 1) await new Promise((r) => setTimeout(r, 10));
        })(),
        5000,
        'the first change',
      );
      const first = Date.now() - started;
      await writeKv(writer, service, {});
      await withTimeout(watching, 5000, 'the second change');
      assert.equal(
        seen.map((c) => [c.key, c.value, c.source]),
        [
          ['GREETING', 'kv', 'kv'],
          ['GREETING', 'file', 'file'],
        ],
        `seen in ${first} ms, then the fallback`,
      );
      assert.is(seen[0]!.snapshot.string('GREETING'), 'kv', "a change's snapshot is the new configuration");
      assert.is(await config.string('GREETING'), 'file', "the watcher's own snapshot did not change");
    } finally {
      stop.abort();
    }
  });

  test('a watch ends when its signal fires (0 changes), and a prefix filters what it yields', async (ctx) => {
    const service = fresh();
    const writer = ctx.fixture.backend(1);
    const stop = new AbortController();
    const config = reader(ctx, service, stop.signal);
    const seen: string[] = [];
    const watching = (async () => {
      for await (const change of config.watch('feature.', { interval: 50 })) seen.push(change.key);
    })();
    await config.snapshot();
    await writeKv(writer, service, { other: 1 });
    await new Promise((r) => setTimeout(r, 300));
    await writeKv(writer, service, { other: 1, 'feature.a': true });
    const until = Date.now() + 5000;
    while (seen.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    await withTimeout(watching, 2000, 'the watch to end at its signal');
    assert.equal(seen, ['feature.a']);
  });

  test.run();
}
