/**
 * The launcher (serve/launcher.ts, serve/launcher-process.ts, serve/bootstrap.cjs, serve/reaper.ts), driven
 * directly with small entry scripts: the pipes it hands over, the environment a process sees and what /proc shows of
 * it, the processes a function starts (ended with cgroups, and with the /proc sweep), the function user.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readMessages } from '../../adapters/local/ipc.js';
import { functionUser } from '../../serve/function-user.js';
import { Launcher, type LaunchedProcess } from '../../serve/launcher.js';
import { eventually, withTimeout } from '../helpers.js';

const root = process.getuid?.() === 0;
let dir: string;
const launchers: Launcher[] = [];

/** An entry script in the scratch folder (readable by the function user). */
function script(name: string, body: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, body);
  return file;
}

/** Sends one JSON line on fd 3. */
const REPORT = `import { Socket } from 'node:net';
const report = (value) => new Promise((resolve) => {
  const channel = new Socket({ fd: 3, readable: false, writable: true });
  channel.end(JSON.stringify(value) + '\\n', resolve);
});`;

async function started(options: ConstructorParameters<typeof Launcher>[0] = {}): Promise<Launcher> {
  const launcher = new Launcher(options);
  launchers.push(launcher);
  await withTimeout(launcher.start(), 15_000, 'the launcher to start');
  return launcher;
}

/** The first message `proc` sends on its channel. */
async function firstMessage<T>(proc: LaunchedProcess): Promise<T> {
  const { channel } = await withTimeout(proc.started, 10_000, 'the process to start');
  return withTimeout(new Promise<T>((resolve) => readMessages<T>(channel!, resolve)), 10_000, 'its report');
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts processes that outlive their parent; `clearEnv`: the orphaned grandchild drops its environment. */
const forker = (clearEnv: boolean) => `${REPORT}
import { spawn, spawnSync } from 'node:child_process';
const forever = ['-e', 'setInterval(() => {}, 1 << 30)'];
const attached = spawn(process.execPath, forever, { stdio: 'ignore' });
const detached = spawn(process.execPath, forever, { stdio: 'ignore', detached: true });
detached.unref();
const starter = "const c = require('node:child_process').spawn(process.execPath, " + JSON.stringify(forever) + ", { stdio: 'ignore', detached: true${clearEnv ? ', env: {}' : ''} }); process.stdout.write(String(c.pid)); c.unref();";
const grandchild = Number(spawnSync(process.execPath, ['-e', starter], { encoding: 'utf8' }).stdout);
await report({ pids: [attached.pid, detached.pid, grandchild] });
process.exit(0);
`;

async function outlivers(launcher: Launcher, clearEnv: boolean): Promise<number[]> {
  const proc = launcher.spawn({ entry: script(`forker-${clearEnv}`, forker(clearEnv)), env: {}, channel: true });
  const { pids } = await firstMessage<{ pids: number[] }>(proc);
  assert.is(pids.filter((p) => p > 0).length, 3, `pids ${pids.join(', ')}`);
  await withTimeout(proc.exit, 10_000, 'the process to exit');
  return pids;
}

// ---
const launcher = suite('Launcher');

launcher.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-launcher-test-'));
  chmodSync(dir, 0o755);
});

launcher.after(async () => {
  await Promise.all(launchers.map((l) => l.close()));
  rmSync(dir, { recursive: true, force: true });
});

launcher(
  'hands over stdout, stderr and the message pipe; the declared variables reach process.env but not /proc/<pid>/environ',
  async () => {
    const l = await started();
    const proc = l.spawn({
      entry: script(
        'env',
        `${REPORT}
import { readFileSync } from 'node:fs';
console.log('out'); console.error('err');
await report({ key: process.env.API_KEY, environ: readFileSync('/proc/self/environ', 'latin1'), argv: process.argv.slice(2) });`,
      ),
      args: ['one', 'two'],
      env: { API_KEY: 'k-123' },
      channel: true,
    });
    const { stdout, stderr } = await proc.started;
    const out = new Promise<string>((resolve) => stdout.setEncoding('utf8').once('data', resolve));
    const err = new Promise<string>((resolve) => stderr.setEncoding('utf8').once('data', resolve));
    const report = await firstMessage<{ key: string; environ: string; argv: string[] }>(proc);
    assert.is(report.key, 'k-123');
    assert.not.match(report.environ, /API_KEY|k-123/);
    assert.match(report.environ, /MICRO_FN_PROCESS=/);
    assert.equal(report.argv, ['one', 'two']);
    assert.is(await withTimeout(out, 5000, 'stdout'), 'out\n');
    assert.is(await withTimeout(err, 5000, 'stderr'), 'err\n');
    assert.equal(await withTimeout(proc.exit, 10_000, 'the exit'), { code: 0, signal: null });
  },
);

launcher("gives a process an empty parent: nothing of serve's environment in /proc/<ppid>/environ", async () => {
  process.env.MICRO_TEST_SERVE_SECRET = 'serve-only-4c1d';
  try {
    const l = await started();
    const proc = l.spawn({
      entry: script(
        'parent',
        `${REPORT}
import { readFileSync } from 'node:fs';
let parent; try { parent = readFileSync('/proc/' + process.ppid + '/environ', 'latin1'); } catch (e) { parent = e.code; }
await report({ parent });`,
      ),
      env: {},
      channel: true,
    });
    const { parent } = await firstMessage<{ parent: string }>(proc);
    assert.not.match(parent, /serve-only-4c1d/);
    assert.not.match(parent, /PATH=|HOME=/);
  } finally {
    delete process.env.MICRO_TEST_SERVE_SECRET;
  }
});

launcher('deletes the hand-over file before the entry runs', async () => {
  const l = await started();
  const proc = l.spawn({
    entry: script('handover', `${REPORT}\nawait report({});\nsetInterval(() => {}, 1 << 30);`),
    env: { X: '1' },
    channel: true,
  });
  await firstMessage(proc); // its code runs
  const runs = readdirSync(tmpdir()).filter((n) => n.startsWith(`micro-fn-launcher-${process.pid}-`));
  assert.ok(runs.length > 0, 'the private folders');
  for (const name of runs) assert.equal(readdirSync(join(tmpdir(), name, 'env')), [], 'no hand-over file left');
  proc.kill();
  await proc.exit;
});

launcher('ends what a process started when it exits, with cgroups where the system allows: 0 of 3 alive', async () => {
  const l = await started();
  if (!l.cgroups) console.log('  (no cgroup v2 this launcher may use here: the /proc sweep ran instead)');
  const pids = await outlivers(l, true);
  await eventually(() => pids.every((p) => !alive(p)), 5000, `0 of 3 alive (${pids.filter(alive).join(', ')})`);
});

launcher('ends what a process started when it exits, by the /proc sweep without cgroups: 0 of 3 alive', async () => {
  const l = await started({ cgroups: false });
  assert.is(l.cgroups, false);
  const pids = await outlivers(l, false);
  await eventually(() => pids.every((p) => !alive(p)), 5000, `0 of 3 alive (${pids.filter(alive).join(', ')})`);
});

launcher('kill() ends a running process and the process it started', async () => {
  const l = await started({ cgroups: false });
  const proc = l.spawn({
    entry: script(
      'sleeper',
      `${REPORT}
import { spawn } from 'node:child_process';
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore', detached: true });
await report({ pids: [process.pid, child.pid] });
setInterval(() => {}, 1 << 30);`,
    ),
    env: {},
    channel: true,
  });
  const { pids } = await firstMessage<{ pids: number[] }>(proc);
  proc.kill();
  assert.equal(await withTimeout(proc.exit, 10_000, 'the exit'), { code: null, signal: 'SIGKILL' });
  await eventually(() => pids.every((p) => !alive(p)), 5000, `0 of 2 alive (${pids.filter(alive).join(', ')})`);
});

launcher('a function process ends when serve and its launcher are killed at once: 0 of 2 alive', async () => {
  const entry = script(
    'orphan',
    `${REPORT}
import { spawn } from 'node:child_process';
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
await report({ pids: [process.pid, child.pid], launcher: process.ppid });
setInterval(() => {}, 1 << 30);`,
  );
  // A stand-in for serve: a process of its own with a Launcher, printing the function's report.
  const module = (path: string) => JSON.stringify(fileURLToPath(new URL(path, import.meta.url)));
  const host = join(dir, 'host.mts');
  writeFileSync(
    host,
    `import { Launcher } from ${module('../../serve/launcher.ts')};
import { readMessages } from ${module('../../adapters/local/ipc.ts')};
const l = new Launcher({ cgroups: false });
await l.start();
const { channel } = await l.spawn({ entry: ${JSON.stringify(entry)}, env: {}, channel: true }).started;
readMessages(channel, (m) => process.stdout.write(JSON.stringify(m) + '\\n'));`,
  );
  const serve = spawn(process.execPath, ['--import', 'tsx', host], { stdio: ['ignore', 'pipe', 'inherit'] });
  let pids: number[] = [];
  try {
    const line = await withTimeout(
      new Promise<string>((resolve) => serve.stdout!.setEncoding('utf8').once('data', resolve)),
      20_000,
      'the function to report',
    );
    const report = JSON.parse(line) as { pids: number[]; launcher: number };
    pids = report.pids;
    assert.ok(pids.every(alive), 'the function and its child run');
    // At once: serve is stopped first so it cannot react to its launcher's exit (it would end them itself).
    serve.kill('SIGSTOP');
    process.kill(report.launcher, 'SIGKILL');
    serve.kill('SIGKILL');
    await eventually(() => pids.every((p) => !alive(p)), 5000, `0 of 2 alive (${pids.filter(alive).join(', ')})`);
  } finally {
    serve.kill('SIGKILL');
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
});

launcher('a process that cannot be started rejects `started` and still resolves `exit`', async () => {
  const l = await started();
  const proc = l.spawn({ entry: join(dir, 'missing.mjs'), env: {}, channel: true, cwd: join(dir, 'no-such-folder') });
  const err = await proc.started.then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(String(err), /could not be started/);
  assert.equal(await withTimeout(proc.exit, 5000, 'the exit'), { code: null, signal: null });
});

if (root) {
  launcher(
    'as root: runs a process as the function user, and a sibling of that user can read neither its environ nor its memory',
    async () => {
      const user = functionUser()!;
      const l = await started({ user });
      const holder = l.spawn({
        entry: script(
          'holder',
          `${REPORT}\nawait report({ uid: process.getuid(), pid: process.pid });\nsetInterval(() => {}, 1 << 30);`,
        ),
        env: { API_KEY: 'k-holder' },
        channel: true,
      });
      const held = await firstMessage<{ uid: number; pid: number }>(holder);
      assert.is(held.uid, user.uid);
      const reader = l.spawn({
        entry: script(
          'reader',
          `${REPORT}
import { readFileSync, openSync } from 'node:fs';
const attempt = (fn) => { try { fn(); return 'read'; } catch (e) { return e.code; } };
const pid = ${held.pid};
await report({
  uid: process.getuid(),
  environ: attempt(() => readFileSync('/proc/' + pid + '/environ')),
  mem: attempt(() => openSync('/proc/' + pid + '/mem', 'r')),
  maps: attempt(() => readFileSync('/proc/' + pid + '/maps')),
});`,
        ),
        env: {},
        channel: true,
      });
      const seen = await firstMessage<Record<string, unknown>>(reader);
      holder.kill();
      assert.equal(seen, { uid: user.uid, environ: 'EACCES', mem: 'EACCES', maps: 'EACCES' });
    },
  );

  launcher('as root: stage() copies code where only the function user can read it; release() removes it', async () => {
    const user = functionUser()!;
    const l = await started({ user });
    const closed = mkdtempSync(join(tmpdir(), 'micro-fn-closed-')); // 0700: the function user cannot reach it
    try {
      writeFileSync(join(closed, 'index.mjs'), `${REPORT}\nawait report({ uid: process.getuid() });`);
      writeFileSync(join(closed, 'index.mjs.map'), '{}');
      const staged = await l.stage(join(closed, 'index.mjs'));
      assert.is.not(staged, join(closed, 'index.mjs'));
      assert.is(await l.stage(join(closed, 'index.mjs')), staged, 'one copy per source');
      const { uid } = await firstMessage<{ uid: number }>(l.spawn({ entry: staged, env: {}, channel: true }));
      assert.is(uid, user.uid);
      await l.release(join(closed, 'index.mjs'));
      assert.ok(readdirSync(join(staged, '..')).length > 0, 'kept while another user holds it');
      await l.release(join(closed, 'index.mjs'));
      await eventually(
        () => {
          try {
            readdirSync(join(staged, '..'));
            return false;
          } catch {
            return true;
          }
        },
        2000,
        'the copy to be removed',
      );
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  });
}

launcher.run();
