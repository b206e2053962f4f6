/** ctx.config's core: typed reads and their errors, the layers, the snapshot, watch; and the memory plugin's contract. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Context } from '../../../runtime/core/context.js';
import { MicroError } from '../../../runtime/core/errors.js';
import {
  CONFIG_ERROR,
  CONFIG_NAMESPACE,
  createConfig,
  type ConfigBackend,
} from '../../../runtime/core/function-config.js';
import { Metadata } from '../../../runtime/core/metadata.js';
import { Runner } from '../../../runtime/core/runner.js';
import { createMemoryStore } from '../../../runtime/plugins/memory/store.js';
import { rejects, withTimeout } from '../../helpers.js';
import { configContract, writeKv } from '../../contracts/config.js';

// ---
const reads = suite('createConfig: typed reads');

const config = (env: Record<string, unknown>, file?: unknown) => createConfig({ service: 'fn', env, file });

reads('converts text to the type asked for, and a fallback gives the type of get', async () => {
  const c = config({ PORT: '8080', DEBUG: 'yes', NAME: 'Ada', LIST: '[1,2]', RATIO: ' 0.5 ' }, { n: 3, on: false });
  assert.is(await c.number('PORT'), 8080);
  assert.is(await c.get('PORT', 1), 8080, 'get with a number fallback reads a number');
  assert.is(await c.get('PORT'), '8080', 'get without one gives the value as its layer holds it');
  assert.is(await c.bool('DEBUG'), true);
  assert.is(await c.get('on', true), false);
  assert.is(await c.string('n'), '3', 'a number as text');
  assert.is(await c.number('RATIO'), 0.5);
  assert.equal(await c.json('LIST'), [1, 2], 'text parsed as JSON');
  assert.is(await c.number('missing', 5), 5);
  assert.is(await c.string('missing'), undefined);
  assert.is(await c.get('missing', 'x'), 'x');
});

reads('a value of the wrong type is a 500 naming the key and the layer it came from (4 cases)', async () => {
  const c = config({ PORT: 'eighty', FLAG: 'maybe', BAD: '{' }, { limits: { burst: 5 } });
  for (const [read, pattern] of [
    [() => c.number('PORT', 80), /^config PORT from the function's environment is "eighty", not a number$/],
    [() => c.bool('FLAG'), /^config FLAG from the function's environment is "maybe", not a boolean/],
    [() => c.string('limits'), /^config limits from config\.json is \{"burst":5\}, not a string$/],
    [() => c.json('BAD'), /^config BAD from the function's environment is "\{", not JSON/],
  ] as const) {
    const err = (await rejects(read)) as MicroError;
    assert.instance(err, MicroError);
    assert.is(err.id, CONFIG_ERROR);
    assert.is(err.code, 500);
    assert.match(err.detail, pattern);
  }
});

reads('a config.json that is not an object is refused with how to write one', async () => {
  assert.throws(() => config({}, [1, 2]), /config\.json must hold a JSON object of keys/);
});

reads('watch refuses an interval below 50 ms and a prefix with control characters', async () => {
  const c = config({});
  await rejects(() => c.watch('', { interval: 10 }).next());
  await rejects(() => c.watch('a\nb').next());
});

reads(
  'watch with no kv layer waits for its signal and yields nothing (0 changes), rather than ending at once',
  async () => {
    const stop = new AbortController();
    const changes: unknown[] = [];
    let ended = false;
    const watching = (async () => {
      for await (const change of config({ A: '1' }).watch('', { signal: stop.signal })) changes.push(change);
      ended = true;
    })();
    await new Promise((r) => setTimeout(r, 100));
    assert.not.ok(ended, 'still waiting while the signal has not fired');
    stop.abort();
    await withTimeout(watching, 2000, 'the watch to end at its signal');
    assert.equal(changes, []);
  },
);

reads.run();

// ---
const kvLayer = suite('createConfig: the kv layer');

kvLayer('is opened on the first read, once; a failed read is not kept; an absent source reads the rest', async () => {
  const backend = createMemoryStore();
  await writeKv(backend, 'fn', { k: 'kv' });
  let opens = 0;
  let fail = true;
  const c = createConfig({
    service: 'fn',
    env: { k: 'env' },
    open: async () => {
      opens++;
      if (fail) throw new Error('serve is down');
      return backend;
    },
  });
  assert.is(opens, 0, 'made, not opened');
  await rejects(() => c.string('k'));
  fail = false;
  assert.is(await c.string('k'), 'kv');
  assert.is(await c.string('k'), 'kv');
  assert.is(opens, 2, 'tried again after the failure, then the snapshot is kept');
  const warnings: string[] = [];
  const gone: ConfigBackend = {
    guarantees: backend.guarantees,
    set: (...args) => backend.set(...args),
    delete: (...args) => backend.delete(...args),
    get: async () => {
      throw new Error('no serve');
    },
    absent: () => true,
  };
  // One Config per invocation, as a handler's ctx.config is, over the one source the process opened: 3 invocations.
  for (let i = 0; i < 3; i++) {
    const absent = createConfig({
      service: 'fn',
      env: { k: 'env' },
      logger: { warn: (m) => warnings.push(m) },
      open: async () => gone,
    });
    assert.is(await absent.string('k'), 'env');
  }
  assert.is(warnings.length, 1, `said once in 3 invocations: ${warnings.join(' | ')}`);
  assert.match(warnings[0]!, /config: no serve; reading the environment and config\.json only/);
});

kvLayer('an entry that is not an object is a 500 naming the function', async () => {
  const backend = createMemoryStore();
  await backend.set(CONFIG_NAMESPACE, 'fn', '[1]', {});
  const err = (await rejects(() =>
    createConfig({ service: 'fn', env: {}, open: async () => backend }).get('k'),
  )) as Error;
  assert.match(err.message, /the config store's entry of fn is not a JSON object/);
});

kvLayer(
  'a watch whose source fails says so once, not at every read (1 warning for 5+ failed reads), and goes on',
  async () => {
    const backend = createMemoryStore();
    const warnings: string[] = [];
    let reads = 0;
    let fail = false;
    const stop = new AbortController();
    const c = createConfig({
      service: 'fn',
      env: {},
      logger: { warn: (m) => warnings.push(m) },
      signal: () => stop.signal,
      open: async () => ({
        guarantees: backend.guarantees,
        set: (...args) => backend.set(...args),
        delete: (...args) => backend.delete(...args),
        get: async (...args) => {
          reads++;
          if (fail) throw new Error('serve is restarting');
          return backend.get(...args);
        },
      }),
    });
    await c.snapshot();
    fail = true;
    const seen: unknown[] = [];
    const watching = (async () => {
      for await (const change of c.watch('', { interval: 50 })) {
        seen.push(change.value);
        stop.abort();
      }
    })();
    while (reads < 7) await new Promise((r) => setTimeout(r, 20));
    await writeKv(backend, 'fn', { k: 'back' });
    fail = false;
    await withTimeout(watching, 5000, 'the change after the failures');
    assert.equal(warnings, ['config: watching fn: serve is restarting']);
    assert.equal(seen, ['back']);
  },
);

kvLayer.run();

configContract('config contract: memory', async () => {
  const backend = createMemoryStore();
  return { backend: () => backend, cleanup: async () => {} };
});

// ---
const ctxConfig = suite('ctx.config');

const invoke = (runner: Runner, endpoint: string) =>
  runner.invoke({
    id: crypto.randomUUID(),
    service: 'fn',
    endpoint,
    contentType: 'application/json',
    body: new TextEncoder().encode('{}'),
    metadata: new Metadata(),
  });

ctxConfig(
  'reads the environment and the plugin, opened on a handler’s first read only (0 opens for 2 that never read)',
  async () => {
    let opens = 0;
    const backend = createMemoryStore();
    await writeKv(backend, 'fn', { shout: 'true' });
    const runner = new Runner(
      {
        name: 'fn',
        handlers: {
          S: {
            Plain: () => ({ ok: true }),
            Read: async (_req: unknown, ctx: Context) => ({
              greeting: await ctx.config.string('GREETING', 'Hello'),
              shout: await ctx.config.bool('shout', false),
              token: await ctx.config.string('MICRO_AUTH_TOKEN'),
            }),
          },
        },
      },
      {
        env: { GREETING: 'Hi', MICRO_AUTH_TOKEN: 'secret' },
        plugins: async () => ({ transports: [], config: async () => (opens++, backend), close: async () => {} }),
      },
    );
    for (let i = 0; i < 2; i++) assert.is((await invoke(runner, 'S.Plain')).status, 200);
    assert.is(opens, 0);
    const reply = await invoke(runner, 'S.Read');
    assert.equal(JSON.parse(new TextDecoder().decode(reply.body)), { greeting: 'Hi', shout: true });
    assert.is(opens, 1);
  },
);

ctxConfig('reads the environment alone on a host with no config plugin (a Worker with no MICRO_CONFIG)', async () => {
  const runner = new Runner(
    { name: 'fn', handlers: { S: { Read: async (_req: unknown, ctx: Context) => ctx.config.number('N', 1) } } },
    { env: { N: '2' }, plugins: async () => ({ transports: [], close: async () => {} }) },
  );
  const reply = await invoke(runner, 'S.Read');
  assert.is(new TextDecoder().decode(reply.body), '2');
});

ctxConfig.run();
