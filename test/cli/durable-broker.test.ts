/**
 * serve's durable broker under faults, end to end: real `micro-fn serve` processes started with the CLI, killed
 * with SIGKILL or stopped with SIGTERM and started again on the same MICRO_FN_HOME, real function processes.
 *
 * serve may or may not restore its deployed functions when it starts again (another part of the work): after a
 * restart each test deploys the subscriber again when `Runtime.List` does not show it, so it holds either way. A
 * SIGKILL leaves the killed serve's registry entry behind, so commands after a restart name the runtime.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, controlHeaders, lastJson, start, tempHome, type Running } from './helpers.js';
import { eventually, sleep, withTimeout } from '../helpers.js';

interface Context {
  home: string;
  env: Record<string, string>;
  /** Where the subscriber leaves its traces (the function user writes here). */
  dir: string;
  running: Running[];
  cleanup: () => void;
}

const faults = suite<Context>('micro-fn serve: a durable broker under faults', {} as Context);

faults.before.each((ctx) => {
  const scratch = tempHome();
  ctx.home = scratch.home;
  ctx.env = { MICRO_FN_HOME: scratch.home };
  ctx.dir = mkdtempSync(join(tmpdir(), 'micro-fn-backlog-'));
  chmodSync(ctx.dir, 0o777); // functions write here, as nobody when serve runs as root
  ctx.running = [];
  ctx.cleanup = scratch.cleanup;
});

faults.after.each(async (ctx) => {
  for (const r of ctx.running) {
    r.child.kill('SIGTERM');
    await r.exited(15_000).catch(() => r.kill());
  }
  ctx.cleanup();
  rmSync(ctx.dir, { recursive: true, force: true });
});

const SERVE = ['--concurrency', '4', '--pool', '4'];

async function startServe(ctx: Context, args: string[] = SERVE): Promise<[Running, string]> {
  const serve = start(['serve', '--address', '127.0.0.1:0', '--quiet', ...args], ctx.env);
  ctx.running.push(serve);
  const [, address] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, 20_000);
  return [serve, address!];
}

async function ok(ctx: Context, args: string[]) {
  const r = await cli(args, ctx.env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
}

/** Deploys the subscriber to serve at `address` unless serve already runs it (restored after a restart). */
async function ensureDeployed(ctx: Context, address: string): Promise<void> {
  const res = await withTimeout(
    fetch(`${address}/micro-fn/Runtime.List`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json', ...controlHeaders(ctx.home) },
    }),
    15_000,
    'Runtime.List',
  );
  const { functions } = (await res.json()) as { functions: { name: string }[] };
  if (!functions.some((f) => f.name === 'backlog'))
    await ok(ctx, ['deploy', 'test/fixtures/backlog', '--target', 'local', '--runtime', address]);
}

/** Publishes through serve's gateway (Broker.Publish, as the local broker does), `width` at a time. */
async function publishAll(address: string, topic: string, payloads: unknown[], width = 16): Promise<Response[]> {
  const responses: Response[] = [];
  let next = 0;
  const worker = async () => {
    while (next < payloads.length) {
      const payload = payloads[next++];
      const res = await fetch(`${address}/micro-fn/Broker.Publish`, {
        method: 'POST',
        body: JSON.stringify({ topic, payload }),
        headers: { 'content-type': 'application/json' },
      });
      await res.arrayBuffer().catch(() => undefined);
      responses.push(res);
    }
  };
  await withTimeout(Promise.all(Array.from({ length: width }, worker)), 120_000, `publishing ${payloads.length}`);
  return responses;
}

/** SIGKILL, and the process gone. */
async function kill(serve: Running): Promise<void> {
  const gone = new Promise((resolve) => serve.child.once('exit', resolve));
  serve.child.kill('SIGKILL');
  await withTimeout(gone, 10_000, 'serve to die');
}

/** The launcher and function processes of the serve whose pid is `serve` (their command lines name its folder). */
function processesOf(serve: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`micro-fn-launcher-${serve}-`);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** What process `pid` has open under `dir`. */
function openUnder(pid: number, dir: string): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`)
      .map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      })
      .filter((target) => target.startsWith(dir));
  } catch {
    return [];
  }
}

const lines = (ctx: Context, file: string): string[] =>
  existsSync(join(ctx.dir, file)) ? readFileSync(join(ctx.dir, file), 'utf8').split('\n').filter(Boolean) : [];

function counts(list: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const x of list) out.set(x, (out.get(x) ?? 0) + 1);
  return out;
}

const jobs = (ctx: Context, n: number, ms: number) => Array.from({ length: n }, (_, i) => ({ dir: ctx.dir, n: i, ms }));

faults(
  'SIGKILL of serve with 1,000 messages queued for a slow subscriber: after a restart 1,000 of 1,000 are handled, and only messages in flight at the kill are handled twice',
  async (ctx) => {
    const [serve, address] = await startServe(ctx);
    await ok(ctx, ['deploy', 'test/fixtures/backlog', '--target', 'local', '--runtime', address]);
    // 20 ms each: a handler runs long enough to be caught begun and not done; a process start takes longer.
    const published = await publishAll(address, 'backlog.slow', jobs(ctx, 1000, 20));
    assert.equal(
      published.filter((r) => r.status !== 200).map((r) => r.status),
      [],
      'every publish accepted',
    );
    // Killed while handlers run (begun, not done), after 50 are done.
    await eventually(
      () => lines(ctx, 'handled').length >= 50 && lines(ctx, 'begun').length > lines(ctx, 'handled').length,
      60_000,
      '50 handled and more begun before the kill',
      5,
    );
    await kill(serve);
    await eventually(
      () => processesOf(serve.child.pid!).length === 0,
      10_000,
      'the launcher and the function processes of the killed serve ended',
      20,
    );
    const begunAtKill = new Set(lines(ctx, 'begun'));
    const handledAtKill = counts(lines(ctx, 'handled'));
    const cutShort = [...begunAtKill].filter((n) => !handledAtKill.has(n));
    assert.ok(handledAtKill.size < 1000, `the kill came with a backlog (${handledAtKill.size} of 1000 handled)`);

    const [, again] = await startServe(ctx);
    await ensureDeployed(ctx, again);
    await eventually(() => new Set(lines(ctx, 'handled')).size >= 1000, 240_000, '1,000 handled', 100);
    await sleep(500);
    const handled = counts(lines(ctx, 'handled'));
    assert.is(handled.size, 1000, '1,000 of 1,000 handled');
    assert.equal(
      [...handled.keys()].sort((a, b) => Number(a) - Number(b)),
      Array.from({ length: 1000 }, (_, i) => String(i)),
    );
    const twice = [...handled].filter(([, c]) => c > 1).map(([n]) => n);
    // In flight at the kill: handed to a handler and not yet acked on disk. serve holds at most --concurrency (4)
    // of them: those cut short (begun, not done) and those done whose ack the kill beat (the duplicates).
    const inFlight = cutShort.length + twice.length;
    assert.ok(
      twice.every((n) => begunAtKill.has(n)),
      `handled twice: ${twice.join(', ')}; each must have been begun before the kill`,
    );
    assert.ok(
      inFlight <= 4,
      `${twice.length} duplicates and ${cutShort.length} cut short (of ${begunAtKill.size} begun, ${handledAtKill.size} done at the kill): no more than the 4 in flight at the kill`,
    );
    assert.ok(
      [...handled.values()].every((c) => c <= 2),
      'no message handled more than twice',
    );
  },
);

faults("no function process, nor the launcher that starts them, holds serve's broker store open", async (ctx) => {
  const [serve, address] = await startServe(ctx);
  await ok(ctx, ['deploy', 'test/fixtures/backlog', '--target', 'local', '--runtime', address]);
  const store = join(ctx.home, 'store');
  assert.ok(openUnder(serve.child.pid!, store).length > 0, 'serve itself has the store open (the check sees it)');
  const others = processesOf(serve.child.pid!);
  assert.ok(others.length >= 2, `the launcher and a warm function process (${others.length})`);
  for (const pid of others) assert.equal(openUnder(pid, store), [], `process ${pid} holds nothing of ${store}`);
});

faults('a message published before any subscriber exists reaches the subscriber deployed after it', async (ctx) => {
  const [, address] = await startServe(ctx);
  await ok(ctx, ['publish', 'backlog.slow', JSON.stringify({ dir: ctx.dir, n: 'early' })]);
  await sleep(200);
  await ok(ctx, ['deploy', 'test/fixtures/backlog', '--target', 'local', '--runtime', address]);
  await eventually(() => lines(ctx, 'handled').length >= 1, 30_000, 'the early message handled');
  await sleep(300);
  assert.equal(lines(ctx, 'handled'), ['early']);
});

faults("dead letters survive a SIGKILL of serve and show each attempt's error", async (ctx) => {
  const [serve, address] = await startServe(ctx);
  await ok(ctx, ['deploy', 'test/fixtures/backlog', '--target', 'local', '--runtime', address]);
  await ok(ctx, ['publish', 'backlog.fail', JSON.stringify({ dir: ctx.dir })]);
  // The fifth attempt seen first: each `dlq` below is a CLI process.
  await eventually(() => lines(ctx, 'failed').length >= 5, 30_000, 'five attempts');
  await eventually(
    async () => (JSON.parse((await ok(ctx, ['dlq', 'backlog.fail', '--json'])).stdout) as unknown[]).length === 1,
    30_000,
    'the dead letter',
    50,
  );
  await kill(serve);

  const [, again] = await startServe(ctx);
  const listed = await ok(ctx, ['dlq', 'backlog.fail', '--runtime', again]);
  const text = listed.stdout.split('\n').filter(Boolean);
  assert.match(text[0]!, /failed 5 attempts/);
  assert.equal(
    text.slice(1).map((l) => l.replace(/ {2}\S+T\S+Z {2}/, '  <time>  ')),
    [1, 2, 3, 4, 5].map((n) => `  attempt ${n}  <time>  400  cannot handle it, attempt ${n}`),
  );
  const [letter] = JSON.parse((await ok(ctx, ['dlq', 'backlog.fail', '--json', '--runtime', again])).stdout) as {
    body: string;
    attempts: { attempt: number; code: number; detail: string; at: string }[];
  }[];
  assert.equal(JSON.parse(letter!.body), { dir: ctx.dir });
  assert.equal(
    letter!.attempts.map((a) => [a.attempt, a.code, a.detail]),
    [1, 2, 3, 4, 5].map((n) => [n, 400, `cannot handle it, attempt ${n}`]),
  );
  assert.equal(lines(ctx, 'failed'), ['1', '2', '3', '4', '5']);
});

faults(
  'publishing past --broker-limit gets a retryable 503 saying what to do, and every message kept before is handled after a restart',
  async (ctx) => {
    const [serve, address] = await startServe(ctx, [...SERVE, '--broker-limit', '64KiB']);
    const pad = 'x'.repeat(4000);
    const responses = await publishAll(
      address,
      'backlog.slow',
      Array.from({ length: 40 }, (_, i) => ({ dir: ctx.dir, n: i, ms: 1, pad })),
      1,
    );
    const accepted = responses.filter((r) => r.status === 200).length;
    const refused = responses.filter((r) => r.status === 503);
    assert.ok(accepted >= 10 && accepted <= 16, `${accepted} of 4 KB each fit in 64 KiB`);
    assert.is(accepted + refused.length, 40, 'each publish accepted or refused with 503');
    const cliRefused = await cli(['publish', 'backlog.slow', JSON.stringify({ dir: ctx.dir, pad })], ctx.env);
    assert.is(cliRefused.code, 1);
    assert.match(cliRefused.stderr, /serve --broker-limit\): publish again once subscribers catch up/);
    const error = lastJson(
      (await cli(['publish', 'backlog.slow', JSON.stringify({ dir: ctx.dir, pad }), '--json'], ctx.env)).stderr,
    ) as { code: number };
    assert.is(error.code, 503);
    await kill(serve);

    const [, again] = await startServe(ctx, [...SERVE, '--broker-limit', '64KiB']);
    await ensureDeployed(ctx, again);
    await eventually(() => lines(ctx, 'handled').length >= accepted, 60_000, `the ${accepted} kept`, 100);
    await sleep(300);
    const handled = lines(ctx, 'handled');
    assert.is(new Set(handled).size, accepted, `${accepted} of ${accepted} kept are handled`);
    assert.is(handled.length, accepted, 'each once');
  },
);

faults(
  'a graceful stop with a large backlog finishes what runs and leaves the rest, delivered after a restart: none lost, none twice',
  async (ctx) => {
    const [serve, address] = await startServe(ctx);
    await ok(ctx, ['deploy', 'test/fixtures/backlog', '--target', 'local', '--runtime', address]);
    // 400 messages of 50 ms, 4 at a time, each in a process of its own: many seconds of backlog.
    await publishAll(address, 'backlog.slow', jobs(ctx, 400, 50));
    await eventually(() => lines(ctx, 'handled').length >= 4, 60_000, 'the first handled', 10);
    serve.child.kill('SIGTERM');
    assert.is(await serve.exited(20_000), 0, 'serve stopped (exit 0) without working through the backlog');
    const begun = lines(ctx, 'begun');
    const handled = lines(ctx, 'handled');
    assert.equal([...handled].sort(), [...begun].sort(), 'every message begun before the stop was finished');
    assert.ok(handled.length < 200, `the backlog was left on disk (${handled.length} of 400 handled at the stop)`);

    const [, again] = await startServe(ctx);
    await ensureDeployed(ctx, again);
    await eventually(() => lines(ctx, 'handled').length >= 400, 240_000, '400 handled', 100);
    await sleep(500);
    const all = lines(ctx, 'handled');
    assert.is(new Set(all).size, 400, '400 of 400 handled');
    assert.is(all.length, 400, 'none twice');
  },
);

faults.run();
