/**
 * `micro-fn install lambda-runtime` before it builds anything (what it checks, a second run), and what a user sees
 * when serve must run a Lambda function and the runtime is not installed. The build itself is .ci/run's (and every
 * Lambda test's, which run the installed runtime).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { findRuntime, installFolder } from '../../serve/lambda/ric.js';
import { cli, dummyAws, type Running, start } from './helpers.js';

const onPath = (command: string) =>
  (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      return readdirSync(dir).includes(command);
    } catch {
      return false;
    }
  });

// ---
const install = suite('micro-fn install lambda-runtime');
let tmp: string;

install.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'micro-fn-install-'));
});
install.after(() => rmSync(tmp, { recursive: true, force: true }));

install('names every missing prerequisite in one line and builds nothing (8 of 8 missing)', async () => {
  const home = join(tmp, 'bare');
  const empty = join(tmp, 'empty-path');
  mkdirSync(empty);
  const r = await cli(['install', 'lambda-runtime'], { MICRO_FN_HOME: home, PATH: empty });
  assert.is(r.code, 1);
  assert.match(
    r.stderr,
    /\nmicro-fn: building aws-lambda-ric needs cmake, make, g\+\+, autoconf, automake, libtool, python3, npm, not found on PATH: install them \(Debian\/Ubuntu: apt-get install cmake make g\+\+ autoconf automake libtool python3 npm\), then run micro-fn install lambda-runtime again\n$/,
  );
  assert.equal(readdirSync(tmp).sort(), ['empty-path'], 'no home made');
});

install('says where Node headers npm was pointed at are missing, and how to fix it', async () => {
  const tools = ['cmake', 'make', 'g++', 'autoreconf', 'automake', 'libtoolize', 'python3', 'npm'];
  if (!tools.every(onPath)) {
    if (process.env.CI === 'true') assert.unreachable(`CI=true: .ci/run installs ${tools.join(', ')}`);
    console.log('  (skipping the Node headers check: the build tools are not all installed)');
    return;
  }
  const r = await cli(['install', 'lambda-runtime'], {
    MICRO_FN_HOME: join(tmp, 'headers'),
    npm_config_nodedir: join(tmp, 'no-headers'),
  });
  assert.is(r.code, 1);
  assert.match(r.stderr, /npm's nodedir \(.*no-headers\) holds no Node\.js headers \(include\/node\/common\.gypi\)/);
  assert.match(r.stderr, /npm_config_nodedir/);
});

install('a second run says already installed (--json), building nothing', async () => {
  const home = join(tmp, 'done');
  const dir = installFolder(home);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'dist'));
  writeFileSync(join(dir, 'bin', 'index.mjs'), '');
  writeFileSync(join(dir, 'dist', 'rapid-client.node'), '');
  const r = await cli(['install', 'lambda-runtime', '--json'], { MICRO_FN_HOME: home, PATH: join(tmp, 'nowhere') });
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { package: 'aws-lambda-ric', version: '3.3.0', path: dir, already: true });
  const human = await cli(['install', 'lambda-runtime'], { MICRO_FN_HOME: home });
  assert.is(human.stdout, `already installed: aws-lambda-ric@3.3.0 in ${dir}\n`);
});

install('refuses what it cannot install, naming what it can', async () => {
  const r = await cli(['install', 'browsers'], { MICRO_FN_HOME: join(tmp, 'x') });
  assert.is(r.code, 1);
  assert.is(r.stderr, 'micro-fn: micro-fn can install lambda-runtime; got "browsers"\n');
});

install.run();

// ---
const missing = suite('micro-fn serve without the Lambda runtime');
let home: string;
let serve: Running;
let env: Record<string, string>;

missing.before(async () => {
  home = mkdtempSync(join(tmpdir(), 'micro-fn-noric-'));
  // An empty home and user home: no runtime under MICRO_FN_HOME nor ~/.micro-fn (node_modules has none since it
  // left the dependencies).
  env = {
    HOME: home,
    MICRO_FN_HOME: join(home, '.micro-fn'),
    ...dummyAws,
  };
  serve = start(['serve', '--address', '127.0.0.1:0'], env);
});

missing.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(15_000).catch(() => serve.kill());
  rmSync(home, { recursive: true, force: true });
});

missing('a Lambda deploy fails naming `micro-fn install lambda-runtime`, and serve logs the same', async () => {
  if (findRuntime({ MICRO_FN_HOME: env.MICRO_FN_HOME })?.from === 'node_modules') {
    console.log('  (skipping: an aws-lambda-ric left in node_modules is found there; npm install removes it)');
    return;
  }
  const gateway = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  const r = await cli(['deploy', 'examples/helloworld', '--target', 'lambda', '--endpoint', gateway], env, {
    timeout: 60_000,
  });
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, /run micro-fn install lambda-runtime/, r.stderr);
  await serve.waitFor(/the Lambda function helloworld: .*run micro-fn install lambda-runtime/);
});

missing.run();
