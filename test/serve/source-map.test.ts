/**
 * StackMapper against a real esbuild bundle with a linked map: frames map to the source's line of the `throw`; what
 * it cannot or must not map (no map, a bundle outside its folders, a broken map, a FIFO named like a map) is left as
 * it is, without hanging or throwing.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeMappings, StackMapper } from '../../serve/source-map.js';

let dir: string;
let bundle: string;
/** The bundle's line and column of the `throw`, and the source's line (1-based). */
let at: { line: number; column: number };
const SOURCE_LINE = 4;

const mapper = suite('StackMapper.mapText');

mapper.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-map-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(
    join(dir, 'src', 'index.ts'),
    [
      '// a comment',
      'type T = { a: number };',
      'export function fail(t: T): never {',
      '  throw new Error(`no ${t.a}`);',
      '}',
      '',
    ].join('\n'),
  );
  bundle = join(dir, 'out', 'index.mjs');
  await build({
    entryPoints: [join(dir, 'src', 'index.ts')],
    bundle: true,
    format: 'esm',
    outfile: bundle,
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'silent',
  });
  // Where V8 says the throw is: the frame of a real stack.
  const stack = execFileSync(process.execPath, [
    '--input-type=module',
    '-e',
    `import { fail } from ${JSON.stringify(pathToFileURL(bundle).href)}; try { fail({ a: 1 }); } catch (e) { console.log(e.stack); }`,
  ]).toString();
  const m = /index\.mjs:(\d+):(\d+)/.exec(stack)!;
  at = { line: Number(m[1]), column: Number(m[2]) };
});

mapper.after(() => rmSync(dir, { recursive: true, force: true }));

mapper('maps a frame of the bundle (a path or a file URL) to the source line of the throw', () => {
  const m = new StackMapper({ under: [dir] });
  const source = join(dir, 'src', 'index.ts');
  assert.match(m.mapText(`    at fail (${bundle}:${at.line}:${at.column})`), `    at fail (${source}:${SOURCE_LINE}:`);
  assert.match(
    m.mapText(`at ${pathToFileURL(bundle).href}:${at.line}:${at.column} and more`),
    `at ${source}:${SOURCE_LINE}:`,
  );
  // Inside a JSON string, as the logger writes an error's stack.
  const json = JSON.stringify({ stack: `Error: no\n    at fail (file://${bundle}:${at.line}:${at.column})` });
  assert.match(m.mapText(json), `${source}:${SOURCE_LINE}:`);
});

mapper('leaves frames alone: outside its folders, no map, a broken map, a FIFO named like a map', () => {
  const frame = `    at fail (${bundle}:${at.line}:${at.column})`;
  assert.is(new StackMapper({ under: [join(dir, 'elsewhere')] }).mapText(frame), frame, 'outside');
  const other = join(dir, 'none', 'index.mjs');
  assert.is(new StackMapper().mapText(`at ${other}:1:1`), `at ${other}:1:1`, 'no map');
  mkdirSync(join(dir, 'broken'));
  writeFileSync(join(dir, 'broken', 'index.mjs.map'), '{"version":3,"sources":["a.ts"],"mappings":"!!!;;AAAA');
  assert.is(
    new StackMapper().mapText(`at ${join(dir, 'broken', 'index.mjs')}:1:1`),
    `at ${join(dir, 'broken', 'index.mjs')}:1:1`,
  );
  writeFileSync(join(dir, 'broken', 'b.mjs.map'), 'not json');
  assert.is(
    new StackMapper().mapText(`at ${join(dir, 'broken', 'b.mjs')}:1:1`),
    `at ${join(dir, 'broken', 'b.mjs')}:1:1`,
  );
  execFileSync('mkfifo', [join(dir, 'broken', 'f.mjs.map')]);
  assert.is(
    new StackMapper().mapText(`at ${join(dir, 'broken', 'f.mjs')}:1:1`),
    `at ${join(dir, 'broken', 'f.mjs')}:1:1`,
    'FIFO',
  );
  assert.is(new StackMapper().mapText('no frame here'), 'no frame here');
});

mapper.run();

// ---
const decode = suite('decodeMappings');

decode('decodes segments relative to the previous ones, line by line; garbage ends a line, never throws', () => {
  // Line 0: column 0 → source 0 line 0 column 0; column 4 → line 1 column 2. Line 1: none. Line 2: column 1 → line 1 column 2.
  assert.equal(
    decodeMappings('AAAA,IACE;;CAAA').map((l) => [...l]),
    [[0, 0, 0, 0, 4, 0, 1, 2], [], [1, 0, 1, 2]],
  );
  assert.equal(
    decodeMappings('A!AA;CAAA').map((l) => [...l]),
    [[], [1, 0, 0, 0]],
  );
  assert.equal(
    decodeMappings('').map((l) => [...l]),
    [[]],
  );
});

decode.run();
