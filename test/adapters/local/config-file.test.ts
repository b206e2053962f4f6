/** config.json in a function's bundle (adapters/kit/config-file.ts), through the local build as serve and invoke use it. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildLocal } from '../../../adapters/local/build.js';
import { root } from '../../cli/helpers.js';
import { rejects } from '../../helpers.js';

const test = suite<{ dir: string }>('configFilePlugin', { dir: '' });
test.before.each((ctx) => void (ctx.dir = mkdtempSync(join(tmpdir(), 'micro-fn-config-file-'))));
test.after.each((ctx) => rmSync(ctx.dir, { recursive: true, force: true }));

/** A function in `dir` whose Read endpoint answers ctx.config's snapshot, built into dir/out. */
async function build(dir: string, cache?: string) {
  // Written once: a new mtime would make every build a new one.
  if (!existsSync(join(dir, 'index.ts')))
    writeFileSync(
      join(dir, 'index.ts'),
      `import { defineFunction } from ${JSON.stringify(join(root, 'runtime/core/index.ts'))};
export default defineFunction({ name: 'cf', handlers: { S: { Read: async (_r: unknown, ctx: any) => (await ctx.config.snapshot()).toJSON() } } });`,
    );
  return cache === undefined
    ? buildLocal(join(dir, 'index.ts'), { outdir: join(dir, 'out') })
    : buildLocal(join(dir, 'index.ts'), { env: { MICRO_FN_HOME: cache } });
}

/** What the built function's ctx.config holds (MICRO_CONFIG=memory: no set keys, no serve needed). */
async function read(file: string): Promise<unknown> {
  const { definition, invokeOnce } = await import(pathToFileURL(file).href);
  const reply = await invokeOnce(
    definition,
    { endpoint: 'S.Read', body: new TextEncoder().encode('{}') },
    { MICRO_CONFIG: 'memory' },
  );
  assert.ok(reply.ok, new TextDecoder().decode(reply.body));
  return JSON.parse(new TextDecoder().decode(reply.body));
}

test('bundles the object in config.json beside the entry; a later edit is not in a bundle built before', async (ctx) => {
  writeFileSync(join(ctx.dir, 'config.json'), '{"greeting":"Hola from config.json","limits":{"burst":5}}');
  const built = await build(ctx.dir);
  assert.ok(readFileSync(built.file, 'utf8').includes('Hola from config.json'), 'the file is in the bundle');
  const script = built.file.replace(/\.mjs$/, '.cjs');
  assert.ok(
    readFileSync(script, 'utf8').includes('Hola from config.json'),
    'and in the script a function process runs (code cache)',
  );
  writeFileSync(join(ctx.dir, 'config.json'), '{"greeting":"changed"}');
  assert.equal(await read(built.file), { greeting: 'Hola from config.json', limits: { burst: 5 } });
});

test('refuses a config.json that is not JSON, or not an object, with the file and how to write one (2 cases)', async (ctx) => {
  writeFileSync(join(ctx.dir, 'config.json'), '{"greeting": Hello}');
  const notJson = (await rejects(() => build(ctx.dir))) as Error;
  assert.match(notJson.message, /config\.json is not JSON: /);
  writeFileSync(join(ctx.dir, 'config.json'), '["a"]');
  const notObject = (await rejects(() => build(ctx.dir))) as Error;
  assert.match(notObject.message, /config\.json must hold a JSON object of keys, like \{"greeting": "Hello"\}/);
});

test('a function without config.json bundles no file layer', async (ctx) => {
  const built = await build(ctx.dir);
  assert.equal(await read(built.file), {});
});

test('a cached bundle is built again when config.json appears, changes or goes (5 builds, 3 of them new)', async (ctx) => {
  const home = join(ctx.dir, 'home');
  const first = await build(ctx.dir, home);
  assert.equal(await read(first.file), {});
  assert.ok((await build(ctx.dir, home)).cached, 'nothing changed: the cached bundle');
  writeFileSync(join(ctx.dir, 'config.json'), '{"greeting":"Hello"}');
  const added = await build(ctx.dir, home);
  assert.not.ok(added.cached, 'config.json appeared');
  assert.equal(await read(added.file), { greeting: 'Hello' });
  writeFileSync(join(ctx.dir, 'config.json'), '{"greeting":"Hello again"}');
  const changed = await build(ctx.dir, home);
  assert.not.ok(changed.cached, 'config.json changed');
  assert.equal(await read(changed.file), { greeting: 'Hello again' });
  rmSync(join(ctx.dir, 'config.json'));
  // The bundle built before the file appeared is up to date again (the cache key says whether the file is there).
  const gone = await build(ctx.dir, home);
  assert.is(gone.file, first.file, 'config.json went: the bundle without it');
  assert.equal(await read(gone.file), {});
});

test.run();
