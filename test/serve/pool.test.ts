/**
 * The size of a FunctionPool (serve/pool.ts) under real calls, with real function processes started by the real
 * launcher: it grows past its floor while calls come back to back, never past its budget (serve/pool-budget.ts),
 * shrinks back when they stop, and loses no call when a process dies as it starts. Counts, not timings.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLocal } from '../../adapters/local/build.js';
import type { IpcInvoke } from '../../adapters/local/ipc.js';
import { Launcher } from '../../serve/launcher.js';
import { PoolBudget } from '../../serve/pool-budget.js';
import { FunctionPool, type Outcome } from '../../serve/pool.js';
import { eventually, withTimeout } from '../helpers.js';

const MEMORY = 512;
let dir: string;
let bundle: string;
let launcher: Launcher;
const pools: FunctionPool[] = [];
let folders = 0;

/** A pool of the probe fixture with a folder of its own (PROBE_DIR): its runs file and die tokens. */
async function pool(options: { size: number; budget?: PoolBudget; idle?: number }) {
  const probe = join(dir, `p${++folders}`);
  mkdirSync(probe);
  const p = new FunctionPool({
    name: 'probe',
    launcher,
    bundle,
    env: { MICRO_FN_HOME: dir, MICRO_FN_TIMEOUT: '20000', PROBE_DIR: probe },
    memory: MEMORY,
    concurrency: 4,
    queue: 64,
    timeout: 20_000,
    log: () => {},
    ...options,
  });
  pools.push(p);
  await withTimeout(p.describe(), 20_000, 'the first process to be ready');
  return { p, probe };
}

let ids = 0;
const invoke = (): IpcInvoke => ({
  type: 'invoke',
  id: `i${++ids}`,
  endpoint: 'Probe.Run',
  contentType: 'application/json',
  body: '{}',
  metadata: {},
});

/** The pid that answered, or a failure with the outcome's body. */
function pidOf(outcome: Outcome): number {
  if (outcome.kind !== 'reply' || outcome.status !== 200) throw new Error(`not answered: ${JSON.stringify(outcome)}`);
  return (JSON.parse(outcome.body) as { pid: number }).pid;
}

/** `n` calls, each sent when the one before has answered; the pids that answered. `after` runs after each. */
async function backToBack(p: FunctionPool, n: number, after?: () => void): Promise<number[]> {
  const pids: number[] = [];
  for (let i = 0; i < n; i++) {
    pids.push(pidOf(await withTimeout(p.run(invoke()), 20_000, `call ${i + 1}`)));
    after?.();
  }
  return pids;
}

/** The handler's runs recorded in `probe`: `<pid> <id>` lines. */
const runs = (probe: string) => readFileSync(join(probe, 'runs'), 'utf8').trim().split('\n');

// ---
const size = suite('FunctionPool: its size under load');

size.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-pool-'));
  const built = await buildLocal(join(process.cwd(), 'test', 'fixtures', 'pool-probe', 'index.ts'), {
    outdir: join(dir, 'build'),
  });
  bundle = built.file;
  launcher = new Launcher({ home: dir });
  await withTimeout(launcher.start(), 15_000, 'the launcher to start');
});

size.after(async () => {
  await withTimeout(Promise.all(pools.map((p) => p.close())), 20_000, 'the pools to close').catch(() => {});
  await launcher?.close();
  rmSync(dir, { recursive: true, force: true });
});

size('grows past its floor of 1 under 30 back-to-back calls, each answered by a process of its own', async () => {
  const { p, probe } = await pool({ size: 1, budget: new PoolBudget(8 * MEMORY) });
  const pids = await backToBack(p, 30);
  assert.is(new Set(pids).size, 30, '30 calls answered by 30 processes');
  assert.is(runs(probe).length, 30, 'the handler ran 30 times');
  assert.ok(p.stats.target > 1, `the pool aims above its floor of 1 (target ${p.stats.target})`);
  await eventually(() => p.stats.warm > 1, 20_000, 'more than 1 process warm');
});

size('never holds more than its floor and its budget: 1 + room for 2, 40 back-to-back calls', async () => {
  const budget = new PoolBudget(2 * MEMORY);
  const { p } = await pool({ size: 1, budget });
  let most = 0;
  const sample = () => (most = Math.max(most, p.stats.warm + p.stats.starting));
  const sampler = setInterval(sample, 2);
  try {
    await backToBack(p, 40, sample);
    await eventually(() => (sample(), p.stats.warm === 3), 20_000, '3 processes warm');
  } finally {
    clearInterval(sampler);
  }
  assert.is(p.stats.target, 3, 'the target is the floor and the 2 the budget allows');
  assert.is(most, 3, 'at most 3 processes warm or starting at any time');
  assert.is(budget.used, 2 * MEMORY, 'the budget holds 2 processes of the pool');
});

size('shrinks back to its floor once no call came for `idle` ms, and gives its budget back', async () => {
  const budget = new PoolBudget(4 * MEMORY);
  const { p } = await pool({ size: 1, budget, idle: 500 });
  let most = 0;
  await backToBack(p, 20, () => (most = Math.max(most, p.stats.target)));
  assert.ok(most > 1, `it grew (target at most ${most})`);
  await eventually(
    () => p.stats.target === 1 && p.stats.warm === 1 && p.stats.starting === 0,
    20_000,
    'the pool back at 1 warm process',
  );
  assert.is(budget.used, 0, 'no budget held');
  const pids = await backToBack(p, 1);
  assert.is(pids.length, 1, 'it still serves');
});

size('--pool 0 keeps no process whatever the calls: 10 calls start 10 processes and leave none warm', async () => {
  const budget = new PoolBudget(8 * MEMORY);
  const { p } = await pool({ size: 0, budget });
  const pids = await backToBack(p, 10);
  assert.is(new Set(pids).size, 10, '10 processes');
  assert.is(p.stats.started, 11, 'one to describe the function, one per call');
  assert.is(p.stats.warm + p.stats.starting, 0, 'none warm or starting');
  assert.is(budget.used, 0, 'no budget taken');
});

size(
  'replaces a process while its invocation runs (a moment later), not once it ends: 1 held call, 1 beside it',
  async () => {
    const { p, probe } = await pool({ size: 1 });
    let heldDone = false;
    const held = p.run({ ...invoke(), body: '{"hold":true}' }).then((outcome) => ((heldDone = true), pidOf(outcome)));
    await eventually(() => existsSync(join(probe, 'runs')), 20_000, 'the held call to start');
    // Its replacement gets ready while it runs, and answers a second call then.
    await eventually(() => p.stats.warm === 1, 20_000, 'a process warm again');
    const [beside] = await backToBack(p, 1);
    assert.not.ok(heldDone, 'the held call still runs');
    writeFileSync(join(probe, 'release'), '');
    const first = await withTimeout(held, 20_000, 'the held call');
    assert.is.not(beside, first, 'two processes');
    assert.is(runs(probe).length, 2, 'the handler ran twice');
    await eventually(() => p.stats.warm === 1 && p.stats.starting === 0, 20_000, 'the pool full again');
    assert.is(p.stats.started, 3, 'the first, the held call replaced, the second replaced: 3 processes');
  },
);

for (const floor of [0, 1])
  size(
    `loses no call when processes die as they start (--pool ${floor}): 2 die, 10 calls, 10 answers, 10 runs`,
    async () => {
      const { p, probe } = await pool({ size: floor, budget: new PoolBudget(3 * MEMORY) });
      // With --pool 0, the first call's own process and the one it is offered next die: the third answers.
      for (let i = 0; i < 2; i++) writeFileSync(join(probe, `die-${i}`), '');
      const pids = await backToBack(p, 10);
      assert.is(new Set(pids).size, 10, '10 calls answered by 10 processes');
      assert.is(runs(probe).length, 10, 'the handler ran 10 times');
      const died = readdirSync(probe).filter((n) => n.startsWith('died-'));
      assert.is(died.length, 2, '2 processes died as they started');
    },
  );

size.run();

// ---
const budgets = suite('PoolBudget');

budgets('reserves what is left and refuses past its total, nothing reserved then', () => {
  const budget = new PoolBudget(1000);
  assert.ok(budget.take(600));
  assert.not.ok(budget.take(600), 'over the total');
  assert.is(budget.used, 600);
  assert.ok(budget.take(400));
  budget.give(600);
  assert.is(budget.used, 400);
});

budgets('of 0 never reserves anything', () => {
  const budget = new PoolBudget(0);
  assert.not.ok(budget.take(1));
  assert.is(budget.used, 0);
});

budgets('refuses a size that is not a number of MiB', () => {
  assert.throws(() => new PoolBudget(Number.NaN), /at least 0/);
  assert.throws(() => new PoolBudget(-1), /at least 0/);
});

budgets.run();
