/**
 * serve's queue never starts a call nobody waits for: one whose caller disconnected, whose deadline (Micro-Timeout)
 * passed, or that waited longer than the function's timeout. Against a real `micro-fn serve`, counting the handler's
 * runs (test/fixtures/counter appends a line per run).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, controlHeaders, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;
const dirs: string[] = [];

/** A file the counter fixture appends to, in a folder any function user may write. */
function countFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-queue-'));
  chmodSync(dir, 0o777);
  dirs.push(dir);
  return join(dir, 'runs');
}

const runs = (file: string): number =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

/** A call through the gateway, without the CLI or the client: no retry, no deadline unless given. */
const call = (body: unknown, options: { headers?: Record<string, string>; signal?: AbortSignal } = {}) =>
  fetch(`${gateway}/counter/Counter.Run`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...options.headers },
    signal: options.signal,
  });

/** The counter's pool figures, as `Runtime.List` reports them. */
async function stats(): Promise<{ inflight: number; queued: number }> {
  const res = await fetch(`${gateway}/micro-fn/Runtime.List`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json', ...controlHeaders(scratch.home) },
  });
  const { functions } = (await res.json()) as {
    functions: { name: string; stats: { inflight: number; queued: number } }[];
  };
  return functions.find((f) => f.name === 'counter')!.stats;
}

const idle = () => eventually(async () => (await stats()).inflight === 0, 30_000, 'the pool is idle', 50);

/** Lines of the counter's log that say a call was not started. */
async function notStartedLines(): Promise<number> {
  const r = await ok(['logs', 'counter']);
  return (r.stdout.match(/not started: /g) ?? []).length;
}

// ---
const queue = suite('micro-fn serve: queued calls');

queue.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--quiet'], env);
  [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
});

queue.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

queue('50 callers who give up leave 0 queued invocations running, and a new call runs next: 3 runs', async () => {
  await ok(['deploy', 'test/fixtures/counter', '--concurrency', '2', '--queue', '64', '--timeout', '30s']);
  const file = countFile();
  const giveUp = new AbortController();
  const gaveUp = (r: Promise<Response>) =>
    r.then(
      () => 'answered',
      () => 'gave up',
    );
  // Two hold the slots well past the moment the others give up; 48 wait behind them.
  const callers = [0, 1].map(() => gaveUp(call({ file, ms: 3000 }, { signal: giveUp.signal })));
  await eventually(() => runs(file) === 2, 10_000, 'both slots taken');
  callers.push(...Array.from({ length: 48 }, () => gaveUp(call({ file, ms: 100 }, { signal: giveUp.signal }))));
  await eventually(async () => (await stats()).queued === 48, 10_000, '48 queued', 20);
  giveUp.abort();
  assert.equal(new Set(await withTimeout(Promise.all(callers), 10_000, 'the callers')), new Set(['gave up']));
  // The two already running finish; then the new call has the next slot, not the 49th.
  const res = await withTimeout(call({ file }), 20_000, 'the new call');
  assert.is(res.status, 200);
  assert.is(runs(file), 3, 'the 2 that had started and the new one: 0 of 48 queued ran');
  await idle();
  assert.is(runs(file), 3, 'none of the 48 ran later either');
  await eventually(async () => (await notStartedLines()) === 48, 10_000, "48 'not started' lines in the log");
});

queue('drops a queued call whose deadline passed, with a 408: 20 callers, 0 runs, each told why', async () => {
  await ok(['deploy', 'test/fixtures/counter', '--concurrency', '2', '--queue', '64', '--timeout', '30s']);
  const file = countFile();
  const busy = [call({ file, ms: 1500 }), call({ file, ms: 1500 })];
  await eventually(() => runs(file) === 2, 10_000, 'both slots taken');
  const late = await Promise.all(
    Array.from({ length: 20 }, () => call({ file }, { headers: { 'micro-timeout': '300' } })),
  );
  const errors = await Promise.all(late.map((r) => r.json() as Promise<{ code: number; detail: string }>));
  assert.equal(
    late.map((r) => r.status),
    Array(20).fill(408),
  );
  assert.match(errors[0]!.detail, /deadline passed after \d+ ms in the queue of counter/);
  await Promise.all(busy);
  await idle();
  assert.is(runs(file), 2, 'only the two that had slots ran');
});

queue('answers a call that waited longer than the function timeout 429, not started: 3 calls, 2 runs', async () => {
  // Each holds the slot 2 s of its 3 s timeout: the third waits past 3 s whatever a process takes to start.
  await ok(['deploy', 'test/fixtures/counter', '--concurrency', '1', '--queue', '64', '--timeout', '3s']);
  const file = countFile();
  const first = call({ file, ms: 2000 });
  await eventually(() => runs(file) === 1, 10_000, 'the slot taken');
  const second = call({ file, ms: 2000 });
  await eventually(async () => (await stats()).queued === 1, 10_000, 'the second queued');
  const third = await withTimeout(call({ file }), 20_000, 'the third call'); // no deadline of its own
  assert.is(third.status, 429);
  const error = (await third.json()) as { id: string; detail: string };
  assert.is(error.id, 'micro-fn.not-started', 'marked: a client may send it again');
  assert.match(error.detail, /counter had no free slot for \d+ ms/);
  assert.equal([(await first).status, (await second).status], [200, 200]);
  assert.is(runs(file), 2);
});

queue.run();
