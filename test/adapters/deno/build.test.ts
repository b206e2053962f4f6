/** The Deno build: one ES module for `deno serve`, no Node built-in, only the plugins its configuration selects. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildDeno } from '../../../adapters/deno/build.js';
import { UserError } from '../../../runtime/core/errors.js';
import { rejects, withTimeout } from '../../helpers.js';
import { buildFor, example, fixture, tempDir } from './deno.js';

/** A configuration that selects the NATS registry and broker (the address is only checked, never reached). */
const NATS = { MICRO_REGISTRY: 'nats', MICRO_BROKER: 'nats', MICRO_REGISTRY_ADDRESS: 'wss://nats.example.com' };
const NODE_IMPORT = /from\s*["']node:|import\(\s*["']node:/;

// ---
const build = suite<{ dir: string; remove: () => void }>('buildDeno', { dir: '', remove: () => {} });
build.before.each((ctx) => {
  Object.assign(ctx, tempDir());
});
build.after.each((ctx) => ctx.remove());

build(
  'bundles helloworld as one ES module under 28 KB minified (see the Workers build test), a default export, no Node built-in',
  async (ctx) => {
    const built = await buildFor(example('helloworld'), ctx.dir);
    assert.is(built.file, join(ctx.dir, 'index.mjs'));
    assert.equal(built.artifacts, []);
    assert.ok(built.size < 28 * 1024, `helloworld is ${built.size} bytes`);
    const main = readFileSync(built.file, 'utf8');
    assert.match(main, /export\s*\{[^}]*as default/, 'a default export, which deno serve runs');
    assert.not.match(main, NODE_IMPORT, 'imports no Node built-in');
  },
);

build('carries the plugins its configuration selects, NATS over WebSocket (nats.ws) included, only', async (ctx) => {
  const main = readFileSync((await buildFor(fixture('deno-caller'), ctx.dir, NATS)).file, 'utf8');
  assert.ok(main.includes('nats.ws'), 'nats.ws is bundled for the NATS plugins');
  assert.ok(main.includes('micro_fn_registry'), 'the NATS registry');
  assert.not.ok(main.includes('pullExpires'), 'not the JetStream broker, which the configuration does not select');
  assert.not.match(main, NODE_IMPORT);
  const bare = readFileSync((await buildFor(fixture('deno-caller'), ctx.dir)).file, 'utf8');
  assert.not.ok(bare.includes('nats.ws'), 'without a registry or broker: no NATS client');
  const hello = readFileSync((await buildFor(example('helloworld'), ctx.dir, NATS)).file, 'utf8');
  assert.not.ok(hello.includes('nats.ws'), 'helloworld never calls out: none, whatever the configuration names');
});

build('refuses a configuration that does not run on Deno, saying what does', async (ctx) => {
  const local = (await rejects(() => buildFor(example('helloworld'), ctx.dir, { MICRO_REGISTRY: 'local' }))) as Error;
  assert.match(local.message, 'MICRO_REGISTRY=local does not run on web (it runs on node); here: memory, nats');
  const tcp = { MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: 'nats://127.0.0.1:4222' };
  const err = (await rejects(() => buildFor(example('helloworld'), ctx.dir, tcp))) as Error;
  assert.match(err.message, 'set MICRO_BROKER_ADDRESS to ws://host:port or wss://host:port');
});

build('fails with one line naming the import chain to a Node built-in', async (ctx) => {
  const building = buildDeno(fixture('cloudflare-node'), { outdir: ctx.dir, minify: false });
  const err = (await rejects(() => withTimeout(building, 30_000, 'the build'))) as Error;
  assert.instance(err, UserError);
  assert.not.match(err.message, /\n/);
  const chain = 'test/fixtures/cloudflare-node/index.ts → test/fixtures/cloudflare-node/read.ts → node:fs';
  assert.match(err.message, chain);
  assert.match(err.message, /is a Node built-in, and a Deno bundle takes Web APIs only/);
});

build.run();
