/** The Workers build: a module worker with no Node built-in, carrying only the plugins its configuration selects. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildCloudflare } from '../../../adapters/cloudflare/build.js';
import { UserError } from '../../../runtime/core/errors.js';
import { rejects, withTimeout } from '../../helpers.js';
import { NATS_VARS, buildWorker, fixture, tempDir } from './worker.js';

const helloworld = fileURLToPath(new URL('../../../examples/helloworld/index.ts', import.meta.url));

// ---
const build = suite<{ dir: string; remove: () => void }>('buildCloudflare', { dir: '', remove: () => {} });
build.before.each((ctx) => {
  Object.assign(ctx, tempDir());
});
build.after.each((ctx) => ctx.remove());

// 46.8 KB before issue 18; 27.5 KB once it left out the client, the message path, the listener and the stream
// checks of a function that uses none of them (below); 21.8 KB (21,786 B) once those paths sat in branches their
// constants make dead, the Service's listener and registration moved to presence.ts, and a build without a trace
// exporter dropped the search for one and the span start; 20,451 B (issue 18's 20 KB) once the HTTP plugin's stream
// paths went with streams, and deadlines and ids took their short forms where the platform hands invocations over;
// 19,316 B once builds left out the definition's shape checks it passed (__MICRO_FN_CHECKED__).
// 20 KB as the benchmark counts it: 20,000 bytes.
build('bundles helloworld as one module worker within 20 KB minified, with no Node built-in', async (ctx) => {
  const built = await buildWorker(helloworld, ctx.dir);
  assert.is(built.file, join(ctx.dir, 'index.mjs'));
  assert.equal(built.artifacts, []);
  assert.ok(built.size <= 20_000, `helloworld is ${built.size} bytes`);
  const main = readFileSync(built.file, 'utf8');
  assert.match(main, /export\s*\{[^}]*as default/, 'a default export: a module worker');
  assert.ok(existsSync(`${built.file}.map`), 'its source map beside it');
  assert.ok(main.trimEnd().endsWith('//# sourceMappingURL=index.mjs.map'), 'linked, not inline');
  assert.not.match(main, /from\s*["']node:|import\(\s*["']node:/, 'imports no Node built-in');
  // What the platform never reaches there: a subscriber's wrapping (it has none), a Service's subscriptions
  // (presence.ts: a Worker never subscribes).
  assert.not.ok(main.includes('a subscriber wrapper called next() twice'), 'no message path');
  assert.not.match(main, /unsubscribe \$\{[\w$]+\.topic\} failed/, 'no subscriptions');
});

build('carries the store only for a function whose sources use ctx.store (2 builds)', async (ctx) => {
  const store = 'must be a whole number of milliseconds above 0'; // createStore's check of a ttl (core/store.ts)
  const plain = readFileSync((await buildWorker(helloworld, join(ctx.dir, 'plain'))).file, 'utf8');
  assert.not.ok(plain.includes(store), 'helloworld carries none of it');
  const counter = readFileSync(
    (await buildWorker(fixture('../../examples/counter'), join(ctx.dir, 'counter'))).file,
    'utf8',
  );
  assert.ok(counter.includes(store), 'examples/counter carries it');
});

build('carries locks only for a function whose sources use ctx.sync (2 builds)', async (ctx) => {
  const sync = 'not renewed within its TTL'; // a lease's loss (core/sync.ts)
  const counter = readFileSync(
    (await buildWorker(fixture('../../examples/counter'), join(ctx.dir, 'counter'))).file,
    'utf8',
  );
  assert.not.ok(counter.includes(sync), 'examples/counter (ctx.store only) carries none of it');
  const lock = readFileSync((await buildWorker(fixture('../../examples/lock'), join(ctx.dir, 'lock'))).file, 'utf8');
  assert.ok(lock.includes(sync), 'examples/lock carries it');
});

build('carries the stream machinery only for a function that serves a stream or calls one (3 builds)', async (ctx) => {
  // A string of the Dispatcher's stream side (server-stream.ts) and one of the client's (client-stream.ts).
  const serving = 'a message could not be decoded';
  const calling = 'a stream is read once';
  const firstMessage = 'the request stream ended before its first message'; // the Dispatcher's (server.ts)
  const plain = readFileSync((await buildWorker(helloworld, join(ctx.dir, 'plain'))).file, 'utf8');
  assert.not.ok(plain.includes(serving) || plain.includes(calling), 'helloworld carries none of it');
  assert.not.ok(plain.includes(firstMessage), "nor the Dispatcher's stream side");
  const server = readFileSync(
    (await buildWorker(fixture('../../examples/stream'), join(ctx.dir, 'stream'))).file,
    'utf8',
  );
  assert.ok(server.includes(serving) && server.includes(calling), 'examples/stream carries it');
  const caller = readFileSync((await buildWorker(fixture('stream-caller'), join(ctx.dir, 'caller'))).file, 'utf8');
  assert.ok(caller.includes(calling), 'a function whose source calls .stream( carries the client side');
});

build('carries the client only for a function whose sources call out (2 builds)', async (ctx) => {
  const client = 'the client has no registry: pass one, or call with an address'; // Client's (core/client.ts)
  const plain = readFileSync((await buildWorker(helloworld, join(ctx.dir, 'plain'), NATS_VARS)).file, 'utf8');
  assert.not.ok(plain.includes(client), 'helloworld carries none of it');
  assert.not.ok(plain.includes('nats.ws') || plain.includes('micro_fn_registry'), 'nor the NATS plugins its vars name');
  const caller = readFileSync((await buildWorker(fixture('cloudflare'), join(ctx.dir, 'caller'))).file, 'utf8');
  assert.ok(caller.includes(client), 'a function that publishes carries it');
});

build('carries the plugins its vars select, NATS over WebSocket (nats.ws) included, and nothing else', async (ctx) => {
  const built = await buildWorker(fixture('cloudflare'), ctx.dir, NATS_VARS);
  const main = readFileSync(built.file, 'utf8');
  assert.ok(main.includes('nats.ws'), 'nats.ws is bundled for the NATS plugins');
  assert.ok(main.includes('micro_fn_registry'), 'the NATS registry');
  assert.not.ok(main.includes('pullExpires'), 'not the JetStream broker, which the vars do not select');
  assert.not.match(main, /from\s*["']node:|import\(\s*["']node:/);
});

build(
  'leaves out every plugin its configuration does not select: a Worker built so says how to get one',
  async (ctx) => {
    const built = await buildWorker(fixture('cloudflare'), ctx.dir);
    const code = readFileSync(built.file, 'utf8');
    assert.not.ok(code.includes('nats.ws'), 'no NATS client');
    assert.not.ok(code.includes('micro_fn_registry'), 'no NATS registry');
    assert.ok(code.includes('this bundle carries only the plugins its configuration chose when it was built'));
  },
);

build('refuses a configuration that does not run in a Worker, saying what does', async (ctx) => {
  const local = (await rejects(() => buildWorker(helloworld, ctx.dir, { MICRO_REGISTRY: 'local' }))) as Error;
  assert.match(local.message, 'MICRO_REGISTRY=local does not run on web (it runs on node); here: memory, nats');
  const tcp = (await rejects(() =>
    buildWorker(helloworld, ctx.dir, { MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: 'nats://127.0.0.1:4222' }),
  )) as Error;
  assert.match(tcp.message, 'set MICRO_BROKER_ADDRESS to ws://host:port or wss://host:port');
});

build('removes the chunks an older build left in the folder', async (ctx) => {
  const { mkdirSync, writeFileSync, existsSync } = await import('node:fs');
  mkdirSync(join(ctx.dir, 'chunks'));
  writeFileSync(join(ctx.dir, 'chunks', 'old-ABC.mjs'), 'export {}');
  await buildCloudflare(fixture('cloudflare'), { outdir: ctx.dir, minify: false });
  assert.not.ok(existsSync(join(ctx.dir, 'chunks')));
});

build('fails with one line naming the import chain to a Node built-in', async (ctx) => {
  const err = (await rejects(() =>
    withTimeout(buildCloudflare(fixture('cloudflare-node'), { outdir: ctx.dir, minify: false }), 30_000, 'the build'),
  )) as Error;
  assert.instance(err, UserError);
  assert.not.match(err.message, /\n/);
  assert.match(err.message, 'test/fixtures/cloudflare-node/index.ts → test/fixtures/cloudflare-node/read.ts → node:fs');
  assert.match(err.message, /is a Node built-in, and a Workers bundle takes Web APIs only/);
});

build.run();
