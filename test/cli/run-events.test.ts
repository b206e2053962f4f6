/** `micro-fn run` subscribed through the local broker that `micro-fn serve` hosts. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually } from '../helpers.js';

const events = suite('micro-fn run with subscribers');
let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
const running: Running[] = [];

events.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--ack-wait', '1s'], env);
  await serve.waitFor(/listening on/);
});

events.after.each(() => {
  for (const r of running.splice(0)) r.kill();
});

events.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10000).catch(() => serve.kill());
  scratch.cleanup();
});

function run(entry: string): Running {
  const r = start(['run', entry], env);
  running.push(r);
  return r;
}

events('takes one published message, handles it, and exits 0', async () => {
  const fn = run('examples/events');
  await fn.waitFor(/listening on/);
  assert.is((await cli(['publish', 'user.created', '{"id":7}'], env)).code, 0);
  assert.is(await fn.exited(), 0);
  assert.match(fn.stdout(), /user 7 created/, "the handler's info line, on stdout");
});

events('gives a message to the next instance when the one handling it is killed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-run-'));
  try {
    const first = run('test/fixtures/worker');
    await first.waitFor(/listening on/);
    assert.is((await cli(['publish', 'work.hang', JSON.stringify({ dir })], env)).code, 0);
    await eventually(() => existsSync(join(dir, 'attempt-1')), 10000, 'the first attempt');
    first.kill();
    const second = run('test/fixtures/worker');
    await second.waitFor(/listening on/);
    await eventually(() => existsSync(join(dir, 'attempt-2')), 15000, 'the redelivery');
    assert.is(await second.exited(), 0);
    assert.ok(
      Number(readFileSync(join(dir, 'attempt-2'), 'utf8')) !== Number(readFileSync(join(dir, 'attempt-1'), 'utf8')),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

events('fails in one line when no serve hosts the local broker', async () => {
  const home = tempHome();
  try {
    const r = await cli(['run', 'examples/events'], { MICRO_FN_HOME: home.home });
    assert.is(r.code, 1);
    assert.match(r.stderr, /none is running/);
  } finally {
    home.cleanup();
  }
});

events.run();
