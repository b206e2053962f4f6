/**
 * The bundle cache (adapters/kit/cache.ts): concurrent builds of one bundle in one process, a hit, a change.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cached } from '../../../adapters/kit/cache.js';

const cache = suite('cached');
let tmp: string;
let input: string;
let builds: number;

cache.before.each(() => {
  tmp = mkdtempSync(join(tmpdir(), 'micro-fn-cache-'));
  input = join(tmp, 'index.ts');
  writeFileSync(input, 'export default 1;\n');
  builds = 0;
});
cache.after.each(() => rmSync(tmp, { recursive: true, force: true }));

const env = () => ({ MICRO_FN_HOME: join(tmp, 'home') });
const build = async (outdir: string) => {
  builds++;
  mkdirSync(outdir, { recursive: true });
  const file = join(outdir, 'index.mjs');
  writeFileSync(file, readFileSync(input));
  return { file, size: 18, inputs: [input] };
};

cache(
  'two callers of one bundle at once share one build (1 build, 2 answers; the second failed with ENOENT before)',
  async () => {
    const [a, b] = await Promise.all([cached('t', 'k', env(), build), cached('t', 'k', env(), build)]);
    assert.is(builds, 1);
    assert.is(a.file, b.file);
    assert.is(readFileSync(a.file, 'utf8'), 'export default 1;\n');
  },
);

cache('a hit builds nothing; a changed input builds again (2 builds for 3 calls)', async () => {
  const first = await cached('t', 'k', env(), build);
  const hit = await cached('t', 'k', env(), build);
  assert.is(hit.cached, true);
  assert.is(hit.file, first.file);
  writeFileSync(input, 'export default 22;\n');
  const changed = await cached('t', 'k', env(), build);
  assert.is(changed.cached, false);
  assert.is.not(changed.file, first.file);
  assert.is(builds, 2);
});

cache.run();
