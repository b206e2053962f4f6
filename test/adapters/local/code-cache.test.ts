/**
 * A local bundle's script and its V8 code cache (adapters/local/code-cache.cjs), loaded the way a function process
 * loads it (serve/bootstrap.cjs): in a fresh plain `node` process each time. A cache that is not the script's, or
 * not whole, is never run: the script is compiled from source and answers the same.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLocal } from '../../../adapters/local/build.js';
import type * as CodeCache from '../../../adapters/local/code-cache.cjs';
import { withTimeout } from '../../helpers.js';

const loader = join(process.cwd(), 'adapters', 'local', 'code-cache.cjs');
const codeCache = createRequire(import.meta.url)(loader) as typeof CodeCache;

interface Run {
  /** What loadBeside said of the cache, or 'module' when it gave way to index.mjs. */
  cache: string;
  reply: string;
}

/** Loads `bundle` as a function process does and invokes Greeter.Hello once, in a fresh `node`. */
function start(bundle: string): Promise<Run> {
  const code = `
const loaded = require(${JSON.stringify(loader)}).loadBeside(${JSON.stringify(bundle)});
const get = loaded ? Promise.resolve(loaded.exports) : import(${JSON.stringify(bundle)});
get.then((m) => m.invokeOnce(m.definition, { endpoint: 'Greeter.Hello', body: new TextEncoder().encode('{"name":"Ada"}') }, {}))
  .then((r) => console.log(JSON.stringify({ cache: loaded ? loaded.cache : 'module', reply: new TextDecoder().decode(r.body) })));`;
  return withTimeout(
    new Promise((resolve, reject) =>
      execFile(process.execPath, ['-e', code], { env: {} }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Run),
      ),
    ),
    30_000,
    'a function process start',
  );
}

const HELLO = '{"message":"Hello Ada"}';
let dir: string;
let bundle: string;
let script: string;
let cache: string;
/** The cache the build wrote (top level only). */
let built: Buffer;

const header = (file: string) => readFileSync(file).toString('latin1', 0, readFileSync(file).indexOf(10));

// ---
const load = suite('loadBeside');

load.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-code-cache-'));
  ({ file: bundle } = await buildLocal(join(process.cwd(), 'examples', 'helloworld', 'index.ts'), { outdir: dir }));
  script = join(dir, 'index.cjs');
  cache = codeCache.cacheFile(script);
  built = readFileSync(cache);
});

load.after(() => rmSync(dir, { recursive: true, force: true }));

load("runs a build's script with the build's cache and answers as index.mjs does", async () => {
  assert.match(header(cache), / build$/);
  assert.equal(await start(bundle), { cache: 'accepted', reply: HELLO });
  const kept = readFileSync(script);
  rmSync(script);
  assert.equal(await start(bundle), { cache: 'module', reply: HELLO }, 'index.mjs alone');
  writeFileSync(script, kept);
});

load.before.each(() => {
  // Every test starts from the build's cache.
  writeFileSync(cache, built);
});

load('the first run leaves the bytecode of what it ran, which the next start takes', async () => {
  await start(bundle);
  assert.match(header(cache), / run$/);
  assert.ok(readFileSync(cache).length > built.length, 'more bytecode than the top level');
  assert.equal(await start(bundle), { cache: 'accepted', reply: HELLO });
});

load("a stale cache (another script's hash) is not used: compiled from source, same reply, then replaced", async () => {
  const other = Buffer.from(built);
  const at = other.indexOf(' build\n') - 1; // the hash's last digit
  other[at] = other[at] === 0x30 ? 0x31 : 0x30;
  writeFileSync(cache, other);
  assert.equal(await start(bundle), { cache: 'none', reply: HELLO });
  const hash = /micro-fn-bundle ([0-9a-f]{64})\n$/.exec(readFileSync(script, 'utf8'))![1];
  assert.is(header(cache), `micro-fn code cache 1 ${hash} run`);
  assert.equal(await start(bundle), { cache: 'accepted', reply: HELLO });
});

load('a corrupt cache is never run: truncated, garbage, empty, a header alone each answer the same (4)', async () => {
  const end = built.indexOf(10) + 1;
  const corrupt: [string, Buffer, string][] = [
    ['truncated bytecode', built.subarray(0, end + Math.floor((built.length - end) / 2)), 'rejected'],
    ['garbage', Buffer.from('\x00\xff not a cache at all\n'.repeat(100), 'latin1'), 'none'],
    ['empty', Buffer.alloc(0), 'none'],
    ['a header alone', built.subarray(0, end), 'none'],
  ];
  for (const [what, data, said] of corrupt) {
    writeFileSync(cache, data);
    assert.equal(await start(bundle), { cache: said, reply: HELLO }, what);
  }
});

load('a cache made by another Node is not read: its file name names the version', () => {
  assert.ok(cache.endsWith(`.${process.version}-${process.arch}.cache`), cache);
});

load.run();

// ---
const produce = suite('produce');
let scratch: string;

produce.before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-code-cache-'));
});

produce.after(() => rmSync(scratch, { recursive: true, force: true }));

produce('renames import() of node: and file:/// specifiers, which still import, and names its hash', async () => {
  const target = join(scratch, 'target.mjs');
  writeFileSync(target, 'export const answer = 42;');
  const file = join(scratch, 'a.cjs');
  writeFileSync(
    file,
    `exports.both = () => Promise.all([import("node:os"), import(${JSON.stringify(`file://${target}`)})]).then(([os, t]) => typeof os.cpus + t.answer);\n`,
  );
  assert.ok(codeCache.produce(file));
  const text = readFileSync(file, 'utf8');
  assert.not.match(text, /[^\w$.]import\(/);
  assert.match(text, /\n\/\/# micro-fn-bundle [0-9a-f]{64}\n$/);
  copyFileSync(file, join(scratch, 'b.cjs'));
  const loaded = codeCache.loadBeside(join(scratch, 'a.mjs'));
  assert.is(loaded?.cache, 'accepted');
  assert.is(await (loaded!.exports.both as () => Promise<string>)(), 'function42');
});

produce('a script with any other import() is removed with its map (3)', () => {
  for (const call of ['import(name)', 'import("./relative.js")', 'import("lodash")']) {
    const file = join(scratch, 'c.cjs');
    writeFileSync(file, `exports.f = (name) => ${call};\n`);
    writeFileSync(`${file}.map`, '{}');
    assert.is(codeCache.produce(file), undefined, call);
    assert.not.ok(existsSync(file), `${call}: the script is gone`);
    assert.not.ok(existsSync(`${file}.map`), `${call}: its map is gone`);
  }
});

produce('a script without its hash line is not loaded: the bundle is imported', () => {
  writeFileSync(join(scratch, 'd.cjs'), 'exports.x = 1;\n');
  assert.is(codeCache.loadBeside(join(scratch, 'd.mjs')), undefined);
  assert.is(codeCache.loadBeside(join(scratch, 'none.mjs')), undefined, 'no script at all');
});

produce(
  'everyImport: every import() goes to the importer runScript is given, from the cache or not (2 × 3)',
  async () => {
    const file = join(scratch, 'e.cjs');
    writeFileSync(file, 'exports.f = (name) => Promise.all([import(name), import("./x.js"), import("lodash")]);\n');
    assert.ok(codeCache.produce(file, true));
    assert.not.match(readFileSync(file, 'utf8'), /[^\w$.]import\(/);
    for (const cache of ['accepted', 'none']) {
      if (cache === 'none') writeFileSync(codeCache.cacheFile(file), 'garbage');
      const asked: string[] = [];
      const loaded = codeCache.runScript(file, async (specifier) => asked.push(specifier));
      assert.is(loaded?.cache, cache);
      await (loaded!.exports.f as (name: string) => Promise<unknown>)('node:os');
      assert.equal(asked, ['node:os', './x.js', 'lodash'], cache);
    }
    assert.throws(() => codeCache.runScript(join(scratch, 'absent.cjs')), /ENOENT/);
  },
);

produce.run();

// ---
const build = suite('buildLocal: the script beside index.mjs');
let fixtures: string;

build.before(() => {
  fixtures = mkdtempSync(join(tmpdir(), 'micro-fn-code-cache-'));
});

build.after(() => rmSync(fixtures, { recursive: true, force: true }));

build('a function with top-level await, or import.meta.resolve, gets no script: index.mjs alone (2)', async () => {
  const sources = {
    tla: `import { defineFunction } from 'micro-fn';\nconst n = await Promise.resolve(1);\nexport default defineFunction({ name: 'tla', handlers: { T: { N: () => ({ n }) } } });\n`,
    meta: `import { defineFunction } from 'micro-fn';\nexport default defineFunction({ name: 'meta', handlers: { T: { R: () => ({ r: import.meta.resolve('./x.js') }) } } });\n`,
  };
  for (const [name, text] of Object.entries(sources)) {
    const entry = join(fixtures, `${name}.ts`);
    writeFileSync(entry, text);
    const out = join(fixtures, name);
    await buildLocal(entry, { outdir: out });
    assert.ok(existsSync(join(out, 'index.mjs')), name);
    assert.not.ok(existsSync(join(out, 'index.cjs')), `${name}: no script`);
  }
});

build('import.meta.url, dirname and filename in a script are its own, as in the module', async () => {
  const entry = join(fixtures, 'url.ts');
  writeFileSync(
    entry,
    `import { defineFunction } from 'micro-fn';\nexport default defineFunction({ name: 'url', handlers: { T: { U: () => [import.meta.url, import.meta.dirname, import.meta.filename] } } });\n`,
  );
  const out = join(fixtures, 'url');
  const { file } = await buildLocal(entry, { outdir: out });
  assert.not.match(readFileSync(join(out, 'index.cjs'), 'utf8'), /import\.meta/);
  const m = codeCache.loadBeside(file)!.exports as Record<string, any>; // the bundle's exports, as the CLI types them
  const r = await m.invokeOnce(m.definition, { endpoint: 'T.U', body: new TextEncoder().encode('{}') }, {});
  const script = join(out, 'index.cjs');
  assert.equal(JSON.parse(new TextDecoder().decode(r.body)), [pathToFileURL(script).href, out, script]);
});

build("helloworld's script is ASCII: V8 keeps it as a one-byte string, half the bytes of a two-byte one", async () => {
  // One character past ASCII anywhere (a comment esbuild kept) makes V8 hold all of the script as two-byte: about a
  // millisecond more of every start to read and compile it (issue 18).
  const out = join(fixtures, 'ascii');
  await buildLocal(join(process.cwd(), 'examples', 'helloworld', 'index.ts'), { outdir: out });
  const text = readFileSync(join(out, 'index.cjs'), 'utf8');
  const at = text.search(/[^\x00-\x7f]/);
  assert.is(at, -1, `not ASCII: ${JSON.stringify(text.slice(Math.max(0, at - 60), at + 20))}`);
});

build(
  'warmCache: the cache holds what the top level ran ("run"), also when the top level keeps its process alive',
  async () => {
    const entry = join(fixtures, 'busy.ts');
    // A module that, as it loads, starts a timer nobody clears (a connection, a poll): the warm-up does not wait on it.
    writeFileSync(
      entry,
      `import { defineFunction } from 'micro-fn';\nsetInterval(() => {}, 1000);\nexport default defineFunction({ name: 'busy', handlers: { T: { N: () => ({ n: 1 }) } } });\n`,
    );
    const plain = join(fixtures, 'busy-plain');
    await buildLocal(entry, { outdir: plain });
    assert.match(header(codeCache.cacheFile(join(plain, 'index.cjs'))), / build$/);
    const warm = join(fixtures, 'busy-warm');
    const started = Date.now();
    await buildLocal(entry, { outdir: warm, warmCache: true });
    assert.match(header(codeCache.cacheFile(join(warm, 'index.cjs'))), / run$/);
    assert.ok(Date.now() - started < 9000, 'the warm-up ended at its top level, not at the 10 s bound');
  },
);

build.run();
