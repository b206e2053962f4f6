/**
 * A user's own project, from the package a user would get: `npm pack` of this checkout (as built), installed into a
 * temp folder outside the repository; its `micro-fn new` makes a project there, whose `npm install`, `npm test`,
 * type-check, `invoke`, and `serve` + `deploy` + `call` all run through the installed bin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withTimeout } from '../helpers.js';
import { root, type Result } from './helpers.js';

const MINUTES = 60_000;

/** The environment of every command: no tsx loader, no npm lifecycle variables of whoever runs the tests. */
function childEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env))
    if (key !== 'NODE_OPTIONS' && !key.toLowerCase().startsWith('npm_')) env[key] = value;
  return { ...env, MICRO_FN_HOME: home, NO_COLOR: '1' };
}

const children = new Set<ChildProcess>();

/** Runs a command to its end (killed after `ms`). */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, ms = 5 * MINUTES): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not end within ${ms} ms: ${stdout}${stderr}`));
    }, ms);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

const offline = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network/i;

// ---
const project = suite('micro-fn new (a project of its own, from the packed package)');
let tmp: string;
let env: NodeJS.ProcessEnv;
let tool: string;
let app: string;
let tarball: string;
/** Why the rest is skipped: npm could not reach a registry (never under CI=true). */
let skipped: string | undefined;
let serve: ChildProcess | undefined;

project.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'micro-fn-project-'));
  // serve runs functions as another user when it is root: the project's node_modules must be readable to it.
  chmodSync(tmp, 0o755);
  env = childEnv(join(tmp, 'home'));
  tool = join(tmp, 'tool');
  mkdirSync(join(tmp, 'work'));
});

project.after(async () => {
  for (const child of [...children, ...(serve ? [serve] : [])])
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  if (serve && serve.exitCode === null && serve.signalCode === null)
    await new Promise((resolve) => serve!.once('exit', resolve));
  rmSync(tmp, { recursive: true, force: true });
});

/** `npm install`, skipping the rest (with the reason) only when no registry could be reached and CI is not true. */
async function npmInstall(args: string[], cwd: string): Promise<boolean> {
  const r = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...args], cwd, env);
  if (r.code !== 0 && offline.test(r.stderr) && process.env.CI !== 'true') {
    skipped = `npm could not reach a registry: ${r.stderr.trim().split('\n').at(-1)}`;
    console.log(`  (skipping the packed-project tests: ${skipped})`);
    return false;
  }
  assert.is(r.code, 0, `npm install ${args.join(' ')}: ${r.stderr}`);
  return true;
}

project('npm pack of the checkout installs into a folder outside the repository, with declarations', async () => {
  assert.ok(existsSync(join(root, 'dist', 'types', 'runtime', 'index.d.ts')), 'npm run build first: no dist/types');
  const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp], root, env, 2 * MINUTES);
  assert.is(packed.code, 0, packed.stderr);
  tarball = join(
    tmp,
    readdirSync(tmp).find((f) => f.endsWith('.tgz'))!,
  );
  mkdirSync(tool);
  if (!(await npmInstall(['--prefix', tool, tarball], tool))) return;
  assert.ok(existsSync(join(tool, 'node_modules', '.bin', 'micro-fn')));
  assert.ok(existsSync(join(tool, 'node_modules', 'micro-fn', 'dist', 'types', 'runtime', 'index.d.ts')));
  assert.not.ok(existsSync(join(tool, 'node_modules', 'aws-lambda-ric')), 'nothing native is built at install');
});

project(
  'new makes a project that depends on the tarball it came from and prints commands that work there',
  async () => {
    if (skipped) return;
    const bin = join(tool, 'node_modules', '.bin', 'micro-fn');
    const r = await run(bin, ['new', 'greeter'], join(tmp, 'work'), env, MINUTES);
    assert.is(r.code, 0, r.stderr);
    app = join(tmp, 'work', 'greeter');
    assert.match(r.stdout, /created the project greeter\//);
    assert.match(r.stdout, /cd greeter\n\s+npm install\n\s+npm test\n/);
    const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as {
      type: string;
      dependencies: Record<string, string>;
      scripts: Record<string, string>;
    };
    assert.is(pkg.type, 'module');
    assert.is(pkg.dependencies['micro-fn'], `file:${tarball}`);
    assert.equal(Object.keys(pkg.scripts).sort(), ['deploy', 'invoke', 'serve', 'test', 'typecheck']);
    for (const file of ['tsconfig.json', 'index.ts', 'index.test.mjs', 'README.md', '.gitignore'])
      assert.ok(existsSync(join(app, file)), file);
    // Inside the new project, new adds a function folder instead.
    const inner = await run(bin, ['new', 'audit', '--template', 'event', '--json'], app, env, MINUTES);
    assert.is(inner.code, 0, inner.stderr);
    assert.is((JSON.parse(inner.stdout) as { kind: string }).kind, 'function');
    assert.not.ok(existsSync(join(app, 'audit', 'package.json')));
  },
);

project('the project installs, its npm test passes (2 + 2 tests) and it type-checks against .d.ts only', async () => {
  if (skipped) return;
  if (!(await npmInstall([], app))) return;
  const test = await run('npm', ['test'], app, env);
  assert.is(test.code, 0, test.stdout + test.stderr);
  assert.match(test.stdout, /# pass 4/);
  const tsc = await run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', '.', '--listFiles'], app, env);
  assert.is(tsc.code, 0, tsc.stdout + tsc.stderr);
  const sources = tsc.stdout.split('\n').filter((f) => f.includes('/node_modules/micro-fn/') && !f.endsWith('.d.ts'));
  assert.equal(sources, [], 'micro-fn sources type-checked');
  assert.ok(tsc.stdout.includes('/node_modules/micro-fn/dist/types/runtime/index.d.ts'));
});

project('invoke, then serve + deploy + call, through the installed bin', async () => {
  if (skipped) return;
  const bin = join(app, 'node_modules', '.bin', 'micro-fn');
  const invoked = await run(bin, ['invoke', '.', 'Handler.Call', '{"name":"Ada"}'], app, env, 2 * MINUTES);
  assert.is(invoked.code, 0, invoked.stderr);
  assert.equal(JSON.parse(invoked.stdout), { message: 'Hello Ada' });

  const started = spawn(bin, ['serve', '--address', '127.0.0.1:0'], {
    cwd: app,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serve = started;
  let log = '';
  started.stderr!.on('data', (d: Buffer) => (log += d));
  started.stdout!.resume();
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      const check = () => (/listening on http:\/\/127\.0\.0\.1:\d+/.test(log) ? resolve() : undefined);
      started.stderr!.on('data', check);
      started.once('exit', (code) => reject(new Error(`serve exited ${code}: ${log}`)));
    }),
    MINUTES,
    'serve to listen',
  );
  const deployed = await run(bin, ['deploy', '.', '--target', 'local'], app, env, 2 * MINUTES);
  assert.is(deployed.code, 0, deployed.stderr + log);
  const called = await run(bin, ['call', 'greeter', 'Handler.Call', '{"name":"Ada"}'], app, env, MINUTES);
  assert.is(called.code, 0, called.stderr + log);
  assert.equal(JSON.parse(called.stdout), { message: 'Hello Ada' });

  started.kill('SIGTERM');
  const code = await withTimeout(
    new Promise((resolve) => (started.exitCode !== null ? resolve(started.exitCode) : started.once('exit', resolve))),
    30_000,
    'serve to stop',
  );
  assert.is(code, 0, log);
});

project.run();
