/**
 * examples/config as a Worker in real workerd: its config.json and the Worker's vars are read with no config source
 * at all; with MICRO_CONFIG=nats over WebSocket it reads what was written to the bucket. A Worker whose function
 * never touches ctx.config carries none of its code.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Miniflare } from 'miniflare';
import { natsConfig } from '../../../runtime/plugins/nats/plugin.js';
import { readConfig } from '../../../runtime/core/config.js';
import { writeKv } from '../../contracts/config.js';
import { natsAvailable, startNatsServer } from '../../nats-server.js';
import { withTimeout } from '../../helpers.js';
import { buildWorker, startWorker, tempDir } from './worker.js';

const example = fileURLToPath(new URL('../../../examples/config/index.ts', import.meta.url));
const helloworld = fileURLToPath(new URL('../../../examples/helloworld/index.ts', import.meta.url));

/** Strings only the config code holds: its store namespace, its wrong-type message, the NATS bucket. */
const CONFIG_CODE = ['micro-fn.config', 'true, false, 1, 0, yes, no, on, off', 'micro_fn_config'];
const bundleText = (built: { file: string; artifacts: { file: string }[] }) =>
  [built.file, ...built.artifacts.map((a) => a.file)].map((f) => readFileSync(f, 'utf8')).join('\n');

const hello = async (mf: Miniflare) => {
  const res = await withTimeout(
    mf.dispatchFetch('http://worker.test/config/Settings.Hello', {
      method: 'POST',
      body: '{"name":"Ada"}',
      headers: { 'content-type': 'application/json' },
    }),
    30_000,
    'Settings.Hello',
  );
  const body = (await res.json()) as { message?: string };
  assert.is(res.status, 200, JSON.stringify(body));
  return body.message;
};

// ---
const worker = suite<{ dir: string; remove(): void }>('ctx.config in a Worker', { dir: '', remove: () => {} });
worker.before.each((ctx) => void Object.assign(ctx, tempDir()));
worker.after.each((ctx) => ctx.remove());

worker(
  'a function that never touches ctx.config carries none of it, whatever MICRO_CONFIG names (2 builds)',
  async (ctx) => {
    const vars = { MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: 'wss://nats.example.com' };
    const hello = bundleText(await buildWorker(helloworld, join(ctx.dir, 'hello'), vars));
    for (const text of CONFIG_CODE) assert.not.ok(hello.includes(text), `helloworld carries no "${text}"`);
    const config = bundleText(await buildWorker(example, join(ctx.dir, 'config'), vars));
    for (const text of CONFIG_CODE) assert.ok(config.includes(text), `examples/config carries "${text}"`);
  },
);

worker("reads config.json and the Worker's vars with no config source (MICRO_CONFIG unset)", async (ctx) => {
  const built = await buildWorker(example, ctx.dir);
  const mf = startWorker(built, ctx.dir, { shout: 'true' });
  try {
    assert.is(await hello(mf), 'HELLO ADA', "config.json's greeting, the var's shout");
  } finally {
    await mf.dispose();
  }
});

if (natsAvailable())
  worker(
    'reads the NATS config source over WebSocket (MICRO_CONFIG=nats): a set key wins over config.json',
    async (ctx) => {
      const server = await withTimeout(startNatsServer({ websocket: true }), 15_000, 'starting nats-server');
      const env = { MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: server.url };
      const writer = await natsConfig.create({ env, config: readConfig(env), platform: 'node', broker: {} });
      const vars = { MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: server.websocket! };
      const mf = startWorker(await buildWorker(example, ctx.dir, vars), ctx.dir, vars);
      try {
        assert.is(await hello(mf), 'Hello Ada');
        await writeKv(writer, 'config', { greeting: 'Hi' });
        assert.is(await hello(mf), 'Hi Ada');
      } finally {
        await mf.dispose();
        await writer.close?.();
        await server.cleanup();
      }
    },
  );

worker.run();
