import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cli, root, tempHome } from './helpers.js';

// ---
const build = suite('micro-fn build');
let scratch: ReturnType<typeof tempHome>;
build.before(() => {
  scratch = tempHome();
});
build.after(() => scratch.cleanup());

build('writes the bundle where --outdir says and prints its path and size', async () => {
  const outdir = join(scratch.home, 'out');
  const r = await cli(['build', 'examples/helloworld', '--outdir', outdir, '--json'], { MICRO_FN_HOME: scratch.home });
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { target: string; file: string; size: number };
  assert.is(report.target, 'local');
  assert.is(report.file, join(outdir, 'index.mjs'));
  assert.ok(existsSync(report.file));
  assert.ok(report.size > 1000 && report.size >= statSync(report.file).size, `size ${report.size}`);
  const human = await cli(['build', 'examples/helloworld', '--outdir', outdir], { MICRO_FN_HOME: scratch.home });
  assert.match(human.stdout, /index\.mjs\s+\d+(\.\d)? KiB\s+\(local, \d+ ms\)/);
});

build('refuses a target it does not have, in one line', async () => {
  const r = await cli(['build', 'examples/helloworld', '--target', 'mainframe'], { MICRO_FN_HOME: scratch.home });
  assert.is(r.code, 1);
  assert.match(r.stderr, /^micro-fn: --target mainframe is not available/);
});

build.run();

// ---
const scaffold = suite('micro-fn new');
let work: string;
scaffold.before(() => {
  // Inside the repository, so the scaffold's test finds this micro-fn as an installed package would be found.
  work = mkdtempSync(join(root, 'test', '.scaffold-'));
});
scaffold.after(() => rmSync(work, { recursive: true, force: true }));

for (const template of ['rpc', 'event']) {
  scaffold(`creates a ${template} function whose own test passes`, async () => {
    const name = `my-${template}`;
    const r = await cli(['new', join(relative(root, work), name), '--template', template], { MICRO_FN_HOME: work });
    assert.is(r.code, 1, 'a path is not a name');
    const made = spawnSync(process.execPath, [join(root, 'cli', 'bin.mjs'), 'new', name, '--template', template], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    assert.is(made.status, 0, made.stderr);
    assert.ok(existsSync(join(work, name, 'index.ts')));
    const test = spawnSync(process.execPath, ['--test', join(work, name, 'index.test.mjs')], {
      cwd: work,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '', MICRO_FN_HOME: work },
      timeout: 60000,
    });
    assert.is(test.status, 0, test.stdout + test.stderr);
    assert.match(test.stdout, /# pass 2/);
    const again = spawnSync(process.execPath, [join(root, 'cli', 'bin.mjs'), 'new', name], {
      cwd: work,
      encoding: 'utf8',
    });
    assert.is(again.status, 1);
    assert.match(again.stderr, /already exists/);
  });
}

scaffold.run();
