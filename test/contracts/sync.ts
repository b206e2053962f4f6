/**
 * The Sync contract: every sync plugin runs this suite with its own factory. Two hosts contend for the same locks
 * (for local: clients of two serve processes on one MICRO_FN_HOME); the suite counts the overlaps of the holders'
 * own intervals (0 of every acquisition), checks that fencing tokens strictly increase, that a holder that stops
 * renewing (cut off from the store, or a process SIGKILLed) loses the lock at its TTL and not before, that a
 * leader that loses its term is told (`onLoss`), and that a held lock renews itself while its holder runs.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MicroError, errors } from '../../runtime/core/errors.js';
import { SYNC_HELD, SYNC_LOST, createSync, type Lease, type Sync, type SyncBackend } from '../../runtime/core/sync.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { rejects, sleep, withTimeout } from '../helpers.js';

/** A holder in a process of its own, holding `key` until it is killed. */
export interface ProcessHolder {
  /** Its fencing token. */
  token: number;
  /** Epoch ms just before it sent the write that took the lock: the store's TTL started no earlier. */
  before: number;
  /** SIGKILLs it and waits for it to be gone. */
  kill(): Promise<void>;
}

export interface SyncFixture {
  /** How many hosts `backend` can tell apart (2 for the contention tests to mean two hosts). */
  hosts: number;
  /** A client of the plugin on host `host` (0-based), of its own (another connection, another serve). */
  backend(host: number): SyncBackend;
  /** Starts a process that takes lock `key` of `namespace` with `ttl` (plugins with processes to kill). */
  holder?(namespace: string, key: string, ttl: number): Promise<ProcessHolder>;
  cleanup(): Promise<void>;
}

const HOLD = fileURLToPath(new URL('../fixtures/sync-holder/hold.ts', import.meta.url));

/**
 * Starts test/fixtures/sync-holder/hold.ts: a process of its own that takes the lock on `plugin` (local: serve of the
 * MICRO_FN_HOME `where`; nats: the server at `where`) and holds it until killed. `children` collects it for cleanup.
 */
export async function startHolder(
  children: ChildProcess[],
  plugin: 'local' | 'nats',
  where: string,
  namespace: string,
  key: string,
  ttl: number,
): Promise<ProcessHolder> {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLD, plugin, where, namespace, key, `${ttl}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  const line = await withTimeout(
    new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      child.on('exit', (code) => reject(new Error(`the holder exited with ${code} before holding`)));
    }),
    20_000,
    'the holder taking the lock',
  );
  const { token, before } = JSON.parse(line) as { token: number; before: number };
  return {
    token,
    before,
    async kill() {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** SIGKILLs the holders still running. */
export function killHolders(children: ChildProcess[]): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

interface Context {
  fixture?: SyncFixture;
  ns: string;
  leases: Lease[];
}

let tests = 0;

/** A backend whose writes fail with a 503 once `cut` is set: a holder cut off from the store renews nothing. */
function severable(backend: SyncBackend): { backend: SyncBackend; cut(): void } {
  let cut = false;
  const refuse = () => Promise.reject(errors.unavailable('test', 'cut off from the store'));
  return {
    cut: () => void (cut = true),
    backend: {
      guarantees: backend.guarantees,
      get: (ns, key) => (cut ? refuse() : backend.get(ns, key)),
      set: (ns, key, value, options) => (cut ? refuse() : backend.set(ns, key, value, options)),
      delete: (ns, key, options) => (cut ? refuse() : backend.delete(ns, key, options)),
    },
  };
}

const held = async (fn: () => Promise<unknown>, what: string): Promise<MicroError> => {
  const err = (await rejects(fn, `${what}: expected a 409`)) as MicroError;
  assert.is(err.code, 409, `${what}: ${String(err)}`);
  assert.is(err.id, SYNC_HELD);
  return err;
};

export function syncContract(name: string, create: () => Promise<SyncFixture>): void {
  const test = suite<Context>(name, { ns: '', leases: [] });
  const sync = (ctx: Context, host = 0): Sync => {
    const backend = ctx.fixture!.backend(host % ctx.fixture!.hosts);
    return createSync(async () => backend, ctx.ns);
  };

  test.before.each(async (ctx) => {
    ctx.fixture = await withTimeout(create(), 30_000, 'the sync fixture');
    ctx.ns = `sync-${++tests}-${Date.now().toString(36)}`;
    ctx.leases = [];
  });
  test.after.each(async (ctx) => {
    await Promise.allSettled(ctx.leases.map((l) => l.release()));
    await ctx.fixture?.cleanup();
    ctx.fixture = undefined;
  });

  test('never gives a lock to two holders at once: 0 overlaps of 40 acquisitions from two hosts, 4 workers each', async (ctx) => {
    const rounds = 5;
    const intervals: { start: number; end: number; token: number; host: number }[] = [];
    const worker = async (host: number) => {
      const s = sync(ctx, host);
      for (let i = 0; i < rounds; i++) {
        const lease = await s.lock('contended', { ttl: 2000 });
        const start = Date.now(); // after the store granted it: within the true holding
        await sleep(Math.random() * 5);
        assert.ok(lease.held, 'held while it works');
        const end = Date.now(); // before the release is sent: within the true holding
        intervals.push({ start, end, token: lease.token, host });
        await lease.release();
      }
    };
    const workers = Array.from({ length: 8 }, (_, i) => worker(i % 2));
    await withTimeout(Promise.all(workers), 60_000, '40 acquisitions');
    intervals.sort((a, b) => a.start - b.start);
    let overlaps = 0;
    for (let i = 1; i < intervals.length; i++) if (intervals[i]!.start < intervals[i - 1]!.end) overlaps++;
    assert.is(intervals.length, 40, '40 acquisitions');
    assert.is(overlaps, 0, `0 overlapping holders of ${intervals.length} acquisitions`);
    const tokens = intervals.map((i) => i.token);
    for (let i = 1; i < tokens.length; i++)
      assert.ok(tokens[i]! > tokens[i - 1]!, `tokens strictly increase in holding order: ${tokens.join(' ')}`);
    assert.is(new Set(intervals.map((i) => i.host)).size, Math.min(2, ctx.fixture!.hosts), 'both hosts held it');
  });

  test('gives fencing tokens that strictly increase across holders, hosts and locks released or expired', async (ctx) => {
    const tokens: number[] = [];
    for (let i = 0; i < 6; i++) {
      const lease = await sync(ctx, i).lock('fenced', { ttl: 1000 });
      tokens.push(lease.token);
      await lease.release();
    }
    assert.ok(
      tokens.every((t, i) => i === 0 || t > tokens[i - 1]!),
      `6 tokens strictly increase: ${tokens.join(' ')}`,
    );
  });

  test('refuses a held lock with a 409 when wait is 0, and after waiting as long as wait says', async (ctx) => {
    const lease = await sync(ctx, 0).lock('busy', { ttl: 2000 });
    ctx.leases.push(lease);
    const err = await held(() => sync(ctx, 1).lock('busy', { wait: 0 }), 'wait 0');
    assert.match(err.detail, /^the lock busy is held by another: try again later, or wait longer$/);
    const started = Date.now();
    await held(() => sync(ctx, 1).lock('busy', { wait: 200 }), 'wait 200');
    assert.ok(Date.now() - started >= 200, 'it waited the 200 ms it was given');
    assert.ok(lease.held, 'the holder still holds it');
  });

  test('gives a released lock to a waiter from the other host, with a greater token', async (ctx) => {
    const first = await sync(ctx, 0).lock('handover', { ttl: 2000 });
    const waiting = sync(ctx, 1).lock('handover', { ttl: 2000, wait: 10_000 });
    await sleep(50);
    await first.release();
    assert.ok(first.signal.aborted && !first.held, 'the released lease says so');
    const second = await withTimeout(waiting, 10_000, 'the waiter');
    ctx.leases.push(second);
    assert.ok(second.token > first.token, `${second.token} > ${first.token}`);
  });

  test('renews a held lock while its holder runs: held for 4 TTLs, refused to the other host throughout', async (ctx) => {
    const ttl = 400;
    const lease = await sync(ctx, 0).lock('renewed', { ttl });
    ctx.leases.push(lease);
    let refused = 0;
    const until = Date.now() + 4 * ttl;
    while (Date.now() < until) {
      await held(() => sync(ctx, 1).lock('renewed', { wait: 0 }), `refusal ${refused + 1}`);
      refused++;
      await sleep(ttl / 4);
    }
    assert.ok(lease.held && !lease.signal.aborted, 'still held after 4 TTLs');
    assert.ok(refused >= 2, `the other host was refused all ${refused} times it tried`);
  });

  test('takes a lock back at its TTL from a holder cut off from the store, not before; the holder knows first', async (ctx) => {
    const ttl = 600;
    const cutoff = severable(ctx.fixture!.backend(0));
    const before = Date.now();
    const lease = await createSync(async () => cutoff.backend, ctx.ns).lock('partitioned', { ttl });
    cutoff.cut();
    const lost = new Promise<number>((resolve) => lease.signal.addEventListener('abort', () => resolve(Date.now())));
    const next = await withTimeout(sync(ctx, 1).lock('partitioned', { ttl, wait: 10 * ttl }), 20 * ttl, 'the next');
    const got = Date.now();
    ctx.leases.push(next);
    assert.ok(got - before >= ttl, `the next holder got it after the TTL (${got - before} ms >= ${ttl})`);
    const lostAt = await withTimeout(lost, 1000, 'the old lease ending');
    assert.ok(lostAt <= got, 'the cut-off holder stopped calling itself the holder before the next one got it');
    assert.is((lease.signal.reason as MicroError).id, SYNC_LOST);
    assert.ok(next.token > lease.token, 'a greater token fences the old holder out');
    await lease.release(); // late: must not delete the next holder's lock
    await held(() => sync(ctx, 0).lock('partitioned', { wait: 0 }), 'after the old holder released late');
  });

  test('takes a lock back at its TTL from a holder whose process was SIGKILLed, not before', async (ctx) => {
    if (!ctx.fixture!.holder) return void assert.ok(true, 'no processes to kill for this plugin');
    const ttl = 1500;
    const holder = await withTimeout(ctx.fixture!.holder(ctx.ns, 'killed', ttl), 20_000, 'the holder process');
    await holder.kill(); // its renewals only ever pushed the expiry later than `before + ttl`
    const next = await withTimeout(sync(ctx, 1).lock('killed', { ttl, wait: 10 * ttl }), 20 * ttl, 'the next');
    const got = Date.now();
    ctx.leases.push(next);
    assert.ok(got - holder.before >= ttl, `the next got it after the TTL (${got - holder.before} ms >= ${ttl})`);
    assert.ok(next.token > holder.token, `${next.token} > ${holder.token}`);
  });

  test('elects one leader of two candidates; resigning hands over without onLoss, to a greater token', async (ctx) => {
    const losses: string[] = [];
    const first = await sync(ctx, 0).leader('scheduler', { ttl: 1000, onLoss: () => losses.push('first') });
    const second = sync(ctx, 1).leader('scheduler', { ttl: 1000, onLoss: () => losses.push('second') });
    let elected = false;
    void second.then(() => (elected = true));
    await sleep(300);
    assert.not.ok(elected, 'the second waits while the first leads');
    await first.resign();
    const term = await withTimeout(second, 10_000, 'the second election');
    assert.ok(term.token > first.token, 'a greater term');
    await term.resign();
    assert.equal(losses, [], 'resigning is not a loss');
  });

  test('tells a leader that loses its term (onLoss once, its signal fires), and another is elected', async (ctx) => {
    const ttl = 600;
    const cutoff = severable(ctx.fixture!.backend(0));
    const reasons: MicroError[] = [];
    const term = await createSync(async () => cutoff.backend, ctx.ns).leader('lost', {
      ttl,
      onLoss: (r) => reasons.push(r),
    });
    cutoff.cut();
    const next = await withTimeout(sync(ctx, 1).leader('lost', { ttl, wait: 10 * ttl }), 20 * ttl, 'the next leader');
    assert.is(reasons.length, 1, 'onLoss called once');
    assert.is(reasons[0]!.id, SYNC_LOST);
    assert.match(reasons[0]!.detail, /not renewed within its TTL/);
    assert.ok(term.signal.aborted && !term.held, 'its term is over');
    assert.ok(next.token > term.token);
    await next.resign();
    assert.is(reasons.length, 1, 'still once');
  });

  test('stops waiting when its signal fires (a caller who gives up), taking nothing', async (ctx) => {
    const lease = await sync(ctx, 0).lock('abandoned', { ttl: 2000 });
    ctx.leases.push(lease);
    const controller = new AbortController();
    const waiting = sync(ctx, 1).lock('abandoned', { signal: controller.signal });
    await sleep(100);
    controller.abort(errors.timeout('test', 'the caller gave up'));
    const err = (await rejects(() => withTimeout(waiting, 5000, 'the waiter'))) as MicroError;
    assert.is(err.code, 408);
    await lease.release();
    const again = await sync(ctx, 0).lock('abandoned', { wait: 0 });
    ctx.leases.push(again);
    assert.ok(again.held, 'the lock was free after the release: the waiter that gave up took nothing');
  });

  test('refuses bad keys and options with one-line 400s, taking nothing', async (ctx) => {
    const s = sync(ctx, 0);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => s.lock(''), /lock key must be a non-empty string/],
      [() => s.lock('a\nb'), /control characters/],
      [() => s.lock('k', { ttl: 0 }), /ttl must be a whole number of milliseconds of at least 300; got 0/],
      [() => s.lock('k', { ttl: 1.5e3 + 0.5 }), /ttl must be a whole number/],
      [() => s.lock('k', { wait: -1 }), /wait must be a whole number of milliseconds/],
      [() => s.leader(''), /leader name must be a non-empty string/],
    ];
    for (const [fn, pattern] of cases) {
      const err = (await rejects(fn, String(pattern))) as MicroError;
      assert.is(err.code, 400, String(err));
      assert.match(err.detail, pattern);
      assert.not.match(err.detail, /\n/, 'one line');
    }
    assert.throws(() => s.namespace('n'.repeat(101)), /a sync namespace is at most 100 characters/);
    const lease = await s.lock('k', { wait: 0 });
    ctx.leases.push(lease);
    assert.ok(lease.held, `none of the ${cases.length} took k`);
    assert.is(((await rejects(() => s.lock('k', { wait: 0 }))) as MicroError).id, SYNC_HELD);
  });

  test.run();
}
