/** The Workers build: a module worker with no Node built-in, NATS only in lazily loaded chunks. */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildCloudflare } from '../../../adapters/cloudflare/build.js';
import { UserError } from '../../../runtime/core/errors.js';
import { rejects, withTimeout } from '../../helpers.js';
import { buildWorker, fixture, tempDir } from './worker.js';

const helloworld = fileURLToPath(new URL('../../../examples/helloworld/index.ts', import.meta.url));

// ---
const build = suite<{ dir: string; remove: () => void }>('buildCloudflare', { dir: '', remove: () => {} });
build.before.each((ctx) => {
  Object.assign(ctx, tempDir());
});
build.after.each((ctx) => ctx.remove());

build('bundles helloworld as a module worker under 30 KB minified, NATS left to chunks loaded on use', async (ctx) => {
  const built = await buildWorker(helloworld, ctx.dir);
  assert.is(built.file, join(ctx.dir, 'index.mjs'));
  assert.ok(built.startSize < 30 * 1024, `helloworld loads ${built.startSize} bytes at start`);
  assert.ok(built.size <= built.startSize);
  const main = readFileSync(built.file, 'utf8');
  assert.match(main, /export\s*\{[^}]*as default/, 'a default export: a module worker');
  for (const file of [built.file, ...built.artifacts.map((a) => a.file)]) {
    assert.not.match(readFileSync(file, 'utf8'), /from\s*["']node:|import\(\s*["']node:/, `${file} imports no Node built-in`);
  }
  // The WebSocket NATS client is in a chunk that only import() reaches.
  const nats = built.artifacts.filter((a) => readFileSync(a.file, 'utf8').includes('nats.ws'));
  assert.ok(nats.length > 0, 'nats.ws is bundled for the NATS plugins');
  assert.not.ok(main.includes('nats.ws'));
  for (const a of built.artifacts) assert.ok(relative(ctx.dir, a.file).startsWith('chunks/'), a.file);
});

build('leaves the NATS plugins out when asked: a Worker built so says how to get them', async (ctx) => {
  const built = await buildWorker(helloworld, ctx.dir, false);
  const code = [built.file, ...built.artifacts.map((a) => a.file)].map((f) => readFileSync(f, 'utf8')).join('\n');
  assert.not.ok(code.includes('nats.ws'), 'no NATS client');
  assert.ok(code.includes('this Worker was built without the NATS plugins: deploy it with MICRO_REGISTRY or MICRO_BROKER set to nats or jetstream'));
  assert.ok(built.startSize < 30 * 1024);
});

build('clears chunks of an earlier build from the folder', async (ctx) => {
  const first = await buildWorker(helloworld, ctx.dir);
  const second = await buildCloudflare(fixture('cloudflare'), { outdir: ctx.dir, minify: false });
  const { readdirSync } = await import('node:fs');
  const onDisk = readdirSync(join(ctx.dir, 'chunks')).map((f) => join(ctx.dir, 'chunks', f)).sort();
  assert.equal(onDisk, second.artifacts.map((a) => a.file));
  assert.ok(first.artifacts.some((a) => !onDisk.includes(a.file)), 'the first build had chunks of its own');
});

build('fails with one line naming the import chain to a Node built-in', async (ctx) => {
  const err = (await rejects(() => withTimeout(buildCloudflare(fixture('cloudflare-node'), { outdir: ctx.dir, minify: false }), 30_000, 'the build'))) as Error;
  assert.instance(err, UserError);
  assert.not.match(err.message, /\n/);
  assert.match(err.message, 'test/fixtures/cloudflare-node/index.ts → test/fixtures/cloudflare-node/read.ts → node:fs');
  assert.match(err.message, /Workers do not have/);
});

build.run();
