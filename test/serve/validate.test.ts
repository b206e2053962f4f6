/** What serve accepts: names, numbers, Deploy requests, bundle paths, and the file names names become. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMicroError, type MicroError } from '../../runtime/core/errors.js';
import { DEPLOY_LIMITS, nameProblem, numberProblem } from '../../runtime/plugins/local/limits.js';
import { checkBundle, checkDeploy, fileName, isBuildFolder } from '../../serve/validate.js';
import { rejects } from '../helpers.js';

let home: string;
let bundle: string;

function setup(): void {
  home = mkdtempSync(join(tmpdir(), 'micro-fn-validate-'));
  bundle = join(home, 'functions', 'b1', 'index.mjs');
  mkdirSync(join(home, 'functions', 'b1'), { recursive: true });
  writeFileSync(bundle, '');
  writeFileSync(join(home, 'index.mjs'), '');
}
const cleanup = () => rmSync(home, { recursive: true, force: true });

async function refused(promise: () => Promise<unknown>): Promise<MicroError> {
  const err = await rejects(promise);
  assert.ok(isMicroError(err), String(err));
  assert.is((err as MicroError).code, 400);
  return err as MicroError;
}

// ---
const names = suite('nameProblem');

names('takes the names serve keeps, and refuses a 300-character one with the most allowed', () => {
  for (const ok of ['helloworld', 'go.micro.srv.greeter', 'a-b_c', 'x'.repeat(64)])
    assert.is(nameProblem('function', ok), undefined, ok);
  assert.is(
    nameProblem('function', 'x'.repeat(300)),
    `the function name "${'x'.repeat(40)}…" is 300 characters long; the most is 64`,
  );
  assert.match(nameProblem('function', '../etc')!, /is not valid: use letters, digits/);
  assert.match(nameProblem('function', '')!, /a function name is required/);
  assert.match(nameProblem('function', 42)!, /a function name is required/);
});

names('takes topics of up to 255 characters in dotted parts, no wildcards or empty parts', () => {
  for (const ok of ['user.created', 'work.poison', 't'.repeat(255), 'a-b_c.d'])
    assert.is(nameProblem('topic', ok), undefined, ok);
  for (const bad of ['orders.*', 'orders.>', 'a..b', '.a', 'a b', 'a/b', 't'.repeat(256)])
    assert.ok(nameProblem('topic', bad), bad);
});

names.run();

// ---
const numbers = suite('numberProblem');

numbers('names the field and its range for 0, -1, a string and a fraction', () => {
  assert.is(numberProblem('concurrency', 0), 'concurrency must be a whole number from 1 to 1000 (invocations); got 0');
  assert.is(numberProblem('timeout', -1), 'timeout must be a whole number from 1 to 900000 (milliseconds); got -1');
  assert.is(numberProblem('memory', 0), 'memory must be a whole number from 16 to 10240 (MiB); got 0');
  assert.is(
    numberProblem('pool', '2'),
    'pool must be a whole number from 0 to 100 (warm processes); got "2", a string',
  );
  assert.match(numberProblem('queue', 1.5)!, /^queue must be a whole number from 0 to 10000/);
  for (const [field, { min, max }] of Object.entries(DEPLOY_LIMITS)) {
    assert.is(numberProblem(field as keyof typeof DEPLOY_LIMITS, min), undefined);
    assert.is(numberProblem(field as keyof typeof DEPLOY_LIMITS, max), undefined);
  }
});

numbers.run();

// ---
const deploy = suite('checkDeploy');
deploy.before(setup);
deploy.after(cleanup);

deploy('passes a request as micro-fn deploy sends it, with the real bundle path', async () => {
  const request = await checkDeploy(
    {
      bundle,
      entry: '/src/index.ts',
      env: { GREETING: 'hi' },
      pool: 0,
      concurrency: 2,
      queue: 0,
      timeout: 500,
      memory: 128,
    },
    home,
  );
  assert.equal(request, {
    bundle,
    entry: '/src/index.ts',
    env: { GREETING: 'hi' },
    pool: 0,
    concurrency: 2,
    queue: 0,
    timeout: 500,
    memory: 128,
  });
});

deploy(
  'refuses concurrency 0, timeout -1, memory 0 and strings for numbers: 4 of 4 a 400 naming the field',
  async () => {
    const cases: [string, unknown, RegExp][] = [
      ['concurrency', 0, /^concurrency must be a whole number from 1 to 1000/],
      ['timeout', -1, /^timeout must be a whole number from 1 to 900000/],
      ['memory', 0, /^memory must be a whole number from 16 to 10240/],
      ['pool', '3', /^pool must be a whole number from 0 to 100 .*got "3", a string/],
    ];
    for (const [field, value, detail] of cases) {
      const err = await refused(() => checkDeploy({ bundle, [field]: value }, home));
      assert.match(err.detail, detail);
    }
  },
);

deploy('refuses an env that no process could be started with', async () => {
  assert.match((await refused(() => checkDeploy({ bundle, env: { 'A-B': 'x' } }, home))).detail, /env name "A-B"/);
  assert.match((await refused(() => checkDeploy({ bundle, env: { A: 1 } }, home))).detail, /env A must be a string/);
  assert.match((await refused(() => checkDeploy({ bundle, env: { A: 'a\0b' } }, home))).detail, /NUL/);
  assert.match((await refused(() => checkDeploy({ bundle, env: 'A=1' }, home))).detail, /env must be a JSON object/);
});

deploy.run();

// ---
const bundles = suite('checkBundle');
bundles.before(setup);
bundles.after(cleanup);

bundles('takes MICRO_FN_HOME/functions/<build>/index.mjs only', async () => {
  assert.is(await checkBundle(home, bundle), bundle);
});

bundles('refuses <home>/functions/../index.mjs, a relative path, a missing file and a bundle elsewhere', async () => {
  writeFileSync(join(home, 'functions', 'index.mjs'), '');
  const escape = join(home, 'functions') + '/../index.mjs';
  assert.match(
    (await refused(() => checkBundle(home, escape))).detail,
    /the bundle must be .*functions\/<build>\/index\.mjs/,
  );
  assert.match((await refused(() => checkBundle(home, 'functions/b1/index.mjs'))).detail, /absolute path/);
  assert.match(
    (await refused(() => checkBundle(home, join(home, 'functions', 'b2', 'index.mjs')))).detail,
    /does not exist/,
  );
  assert.match(
    (await refused(() => checkBundle(home, join(home, 'functions', 'index.mjs')))).detail,
    /the bundle must be/,
  );
});

bundles('resolves symlinks: a link inside the folder to a file outside it is refused', async () => {
  mkdirSync(join(home, 'functions', 'link'));
  symlinkSync(join(home, 'index.mjs'), join(home, 'functions', 'link', 'index.mjs'));
  assert.match(
    (await refused(() => checkBundle(home, join(home, 'functions', 'link', 'index.mjs')))).detail,
    /the bundle must be/,
  );
});

bundles.run();

// ---
const folders = suite('isBuildFolder');
folders.before(setup);
folders.after(cleanup);

folders(
  'is true for a build folder, false for the bundle folder itself, its parent, and a path through ..',
  async () => {
    assert.ok(await isBuildFolder(home, join(home, 'functions', 'b1')));
    assert.not.ok(await isBuildFolder(home, join(home, 'functions')));
    assert.not.ok(await isBuildFolder(home, `${join(home, 'functions')}/..`));
    assert.not.ok(await isBuildFolder(home, home));
    assert.not.ok(await isBuildFolder(home, join(home, 'functions', 'missing')));
  },
);

folders.run();

// ---
const files = suite('fileName');

files(
  'keeps short names readable, and gives a 255-character topic a name that fits, distinct from its neighbour',
  () => {
    assert.is(fileName('helloworld', '.log'), 'helloworld.log');
    assert.is(fileName('a/b', '.log'), 'a%2Fb.log');
    const long = 't'.repeat(255);
    const a = fileName(long, '.jsonl');
    const b = fileName(`${long.slice(0, 254)}u`, '.jsonl');
    assert.ok(a.length <= 200, `${a.length} characters`);
    assert.ok(a.endsWith('.jsonl') && a.includes('+'));
    assert.is.not(a, b);
  },
);

files.run();
