import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli } from '../../cli/helpers.js';
import { rejects } from '../../helpers.js';
import { buildPackage, listZip, type Package } from './helpers.js';

/** What a bundle says when its configuration asks for a plugin it was built without. */
const NOT_BUNDLED = 'this bundle carries only the plugins its configuration chose when it was built';
/** A string only the NATS registry holds. */
const NATS_REGISTRY = 'micro_fn_registry';
/** A string only the Client holds (core/client.ts). */
const CLIENT = 'the client has no registry: pass one, or call with an address';
const REQUIRE_BANNER = "import { createRequire as __microFnRequire } from 'node:module'";

// ---
const build = suite('buildLambda');
const built: Package[] = [];
const make = async (entry: string, env?: Record<string, string>) => {
  const pkg = await buildPackage(entry, env);
  built.push(pkg);
  return { pkg, code: readFileSync(pkg.build.file, 'utf8') };
};
build.after(() => built.forEach((p) => p.cleanup()));

build(
  'zips helloworld, minified, as index.mjs and its source map, mode 0644, in at most 30 KB, without the NATS client',
  async () => {
    const { pkg, code } = await make('examples/helloworld/index.ts');
    const map = readFileSync(`${pkg.build.file}.map`);
    assert.equal(listZip(pkg.zip), [
      { name: 'index.mjs', mode: 0o644, size: pkg.build.size },
      { name: 'index.mjs.map', mode: 0o644, size: map.byteLength },
    ]);
    // About 34 KB of code and 53 KB of map (positions only, no sources), 29 KB zipped: Node reads the map with
    // NODE_OPTIONS=--enable-source-maps, never as code.
    assert.ok(pkg.build.artifacts[0]!.size <= 30_000, `function.zip is ${pkg.build.artifacts[0]!.size} bytes`);
    assert.not.match(code, /\n\s+\S/, 'minified: no indented line');
    assert.ok(code.trimEnd().endsWith('//# sourceMappingURL=index.mjs.map'), 'linked, not inline');
    assert.not.ok(map.toString().includes('sourcesContent'), 'positions only');
    assert.match(pkg.build.artifacts[0]!.file, /function\.zip$/);
    assert.not.ok(code.includes(NATS_REGISTRY), 'no NATS plugin');
    assert.not.ok(code.includes(CLIENT), 'no client: helloworld never calls out');
    assert.not.ok(code.includes(REQUIRE_BANNER), 'no CommonJS, so no createRequire banner');
  },
);

build('bundles an ES module for Node 22 whose `handler` export is the Lambda handler', async () => {
  const { pkg } = await make('examples/helloworld/index.ts');
  const mod = (await import(pkg.build.file)) as { handler: (event: unknown, context: unknown) => Promise<unknown> };
  const reply = await mod.handler(
    { endpoint: 'Greeter.Hello', body: { name: 'Ada' } },
    { awsRequestId: 'r1', getRemainingTimeInMillis: () => 1000 },
  );
  assert.equal(reply, { body: { message: 'Hello Ada' }, metadata: { 'micro-id': 'r1' } });
  // Built without the message path (no subscriber): an SQS batch is never acknowledged, 2 failures of 2 records.
  const record = (messageId: string) => ({
    messageId,
    body: '{}',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:orders',
    attributes: { ApproximateReceiveCount: '1' },
  });
  const context = { awsRequestId: 'r2', getRemainingTimeInMillis: () => 1000 };
  const sqs = await mod.handler({ Records: [record('m1'), record('m2')] }, context);
  assert.equal(sqs, { batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }] });
  // A message invoked directly fails the invocation (Lambda retries an Event invoke, then its dead-letter target).
  const direct = (await mod.handler({ topic: 'orders', body: {} }, context).then(
    () => 'answered',
    (err: Error) => err.message,
  )) as string;
  assert.match(direct, /no subscriber for topic orders on service helloworld/);
});

build(
  'carries the NATS client, with the createRequire banner it needs, when the environment chooses NATS and the function calls out',
  async () => {
    const { pkg, code } = await make('test/fixtures/caller/index.ts', { MICRO_REGISTRY: 'nats' });
    assert.ok(code.startsWith(REQUIRE_BANNER), 'the banner comes first');
    assert.ok(code.includes(NATS_REGISTRY));
    assert.ok(pkg.build.size > 300_000, `bundle of ${pkg.build.size} bytes`);
    const hello = await make('examples/helloworld/index.ts', { MICRO_REGISTRY: 'nats' });
    assert.not.ok(hello.code.includes(NATS_REGISTRY), 'not for helloworld, which never calls out');
  },
);

build('carries the client and the plugins of a function that calls out, which says how to get another', async () => {
  const { code } = await make('test/fixtures/caller/index.ts');
  assert.ok(code.includes(CLIENT), 'the client');
  assert.ok(code.includes(NOT_BUNDLED), 'says how to get a plugin it was built without');
});

build("bundles the nats package when the function's own code imports it", async () => {
  const { code } = await make('test/fixtures/lambda-nats-user/index.ts');
  assert.ok(code.startsWith(REQUIRE_BANNER));
});

build('leaves @aws-sdk/* to the Lambda runtime', async () => {
  const { pkg, code } = await make('test/fixtures/lambda/index.ts');
  assert.match(code, /import\("@aws-sdk\/client-lambda"\)/);
  assert.ok(pkg.build.size < 300_000, `bundle of ${pkg.build.size} bytes`);
});

build('refuses a client stream endpoint in one line naming it (Lambda has no request streaming)', async () => {
  const err = (await rejects(() => make('test/fixtures/lambda-client-stream/index.ts'))) as Error;
  assert.is(err.name, 'UserError');
  assert.match(err.message, /^Numbers\.Sum is a client stream, and Lambda has no request streaming/);
  assert.not.match(err.message, /\n/);
});

build('bundles a server stream endpoint', async () => {
  const { code } = await make('test/fixtures/lambda-stream/index.ts');
  assert.ok(code.includes('streamifyResponse'));
});

build.run();

// ---
const command = suite('micro-fn build --target lambda');
let out: string;
command.before(() => {
  out = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-cli-'));
});
command.after(() => rmSync(out, { recursive: true, force: true }));

command('prints the bundle and the zip with their sizes', async () => {
  const r = await cli(['build', 'examples/helloworld', '--target', 'lambda', '--outdir', out], {});
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 2, r.stdout);
  assert.match(lines[0]!, /index\.mjs\s+[\d.]+ KiB\s+\(lambda, \d+ ms\)$/);
  assert.match(lines[1]!, /function\.zip\s+[\d.]+ KiB$/);
  assert.equal(
    listZip(join(out, 'function.zip')).map((e) => e.name),
    ['index.mjs', 'index.mjs.map'],
  );
});

command('reports both artifacts with --json', async () => {
  const r = await cli(['build', 'examples/helloworld', '--target', 'lambda', '--outdir', out, '--json'], {});
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { target: string; artifacts: { file: string; size: number }[] };
  assert.is(report.target, 'lambda');
  assert.equal(
    report.artifacts.map((a) => a.file.split('/').pop()),
    ['index.mjs', 'function.zip'],
  );
  assert.ok(report.artifacts[1]!.size <= 30_000, `function.zip is ${report.artifacts[1]!.size} bytes`);
});

command('leaves the bundle unminified with --no-minify', async () => {
  const r = await cli(['build', 'examples/helloworld', '--target', 'lambda', '--outdir', out, '--no-minify'], {});
  assert.is(r.code, 0, r.stderr);
  assert.match(readFileSync(join(out, 'index.mjs'), 'utf8'), /\n  \S/, 'indented lines');
});

command('refuses a client stream with one line naming the endpoint, exit code 1', async () => {
  const r = await cli(['build', 'test/fixtures/lambda-client-stream', '--target', 'lambda', '--outdir', out], {});
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /Numbers\.Sum is a client stream, and Lambda has no request streaming/);
});

command.run();
