/**
 * serve's pool under load (issue 18), each figure against a baseline in the same run:
 *  (d) back-to-back calls: 300 sequential calls, each sent the moment the last answered, with the default pool and
 *      with `--pool 2`, vs a long-running node:http server process answering 300 the same way (targets with the
 *      default pool: p50 ≤ 3 ms, p99 ≤ 20 ms);
 *  (e) invocations/s at concurrency 8 and 32, serve with its defaults, vs plain `node` starting the same bundle at
 *      the same concurrency (target at 8: ≥ 1.5×), with the processes serve started per call;
 *  (f) serve's event loop while processes start: the longest stall of a process that starts 40 processes one after
 *      another through the launcher, its heap small and grown by ~400 MiB, vs the same process calling
 *      child_process.spawn itself (what serve did before the launcher), and vs no start for as long.
 * BENCH_PARTS=def (letters) runs only some; BENCH_SECONDS sets the length of each side of (e), 20 s by default.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { buildLocal } from '../adapters/local/build.js';
import { Launcher } from '../serve/launcher.js';
import { callHello, cliRun, poolFigures, root, settlePool, startBare, startServe, stopServe } from './serve.js';
import { fmt, rate, ratio, summarize } from './stats.js';

const BODY = '{"name":"Ada"}';

export async function benchPool({
  seconds = Number(process.env.BENCH_SECONDS ?? 20),
  parts = process.env.BENCH_PARTS ?? 'def',
}: { seconds?: number; parts?: string } = {}): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-'));
  const cliEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MICRO_FN_HOME: home };
  const servers: ChildProcess[] = [];
  const out: string[] = [];
  try {
    if (parts.includes('d')) out.push(...(await backToBack(cliEnv, servers)));
    if (parts.includes('e')) out.push(...(await throughput(cliEnv, servers, home, seconds)));
    if (parts.includes('f')) out.push(...(await eventLoop(home)));
    return out;
  } finally {
    await stopServe(servers);
    rmSync(home, { recursive: true, force: true });
  }
}

/** (d) */
async function backToBack(cliEnv: Record<string, string>, servers: ChildProcess[]): Promise<string[]> {
  const out: string[] = [];
  const bare = await startBare(servers);
  for (const args of [[], ['--pool', '2']]) {
    const gateway = await startServe(args, cliEnv, servers);
    await cliRun(['deploy', 'examples/helloworld'], cliEnv);
    await settlePool(gateway, cliEnv.MICRO_FN_HOME!);
    const base = await sequence(() => callHello(bare));
    const ours = await sequence(() => callHello(gateway));
    const stats = await poolFigures(gateway, cliEnv.MICRO_FN_HOME!);
    await stopServe(servers.splice(1)); // the bare server stays for the next round
    const a = summarize(ours);
    const b = summarize(base);
    const label = args.length ? `--pool ${args[1]}` : 'default pool';
    out.push(
      `(d) 300 calls back to back, ${label.padEnd(12)}   p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (started ${stats.started}, cold ${stats.cold}; targets for the default pool 3 ms / 20 ms)`,
      `    long-running node:http server process    p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
      `    ratio at p50: ${ratio(a.p50, b.p50)}, at p99: ${ratio(a.p99, b.p99)}`,
    );
  }
  return out;
}

/** 300 calls, each sent when the last has answered (after 5 not counted); their times. */
async function sequence(call: () => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < 305; i++) {
    const t = performance.now();
    await call();
    if (i >= 5) times.push(performance.now() - t);
  }
  return times;
}

/** (e) */
async function throughput(
  cliEnv: Record<string, string>,
  servers: ChildProcess[],
  home: string,
  seconds: number,
): Promise<string[]> {
  const { file: bundle } = await buildLocal(join(root, 'examples', 'helloworld', 'index.ts'), {
    outdir: join(home, 'baseline'),
  });
  const runner = join(home, 'runner.mjs');
  writeFileSync(
    runner,
    `const m = await import(${JSON.stringify(bundle)});
const r = await m.invokeOnce(m.definition, { endpoint: 'Greeter.Hello', body: new TextEncoder().encode(${JSON.stringify(BODY)}) }, process.env);
process.stdout.write(new TextDecoder().decode(r.body) + '\\n');`,
  );
  const fnEnv = { MICRO_FN_HOME: home, MICRO_REGISTRY: 'local', MICRO_BROKER: 'local' };
  const plainNode = () => answered(process.execPath, [runner], fnEnv);
  const out: string[] = [];
  for (const concurrency of [8, 32]) {
    const gateway = await startServe([], cliEnv, servers);
    await cliRun(['deploy', 'examples/helloworld'], cliEnv);
    await settlePool(gateway, home);
    // Alternating slices, so both sides see the same machine; each starts with an uncounted second.
    const rounds = 4;
    const slice = async (op: () => Promise<unknown>) => (
      await rate(1, concurrency, op),
      (await rate(seconds / rounds, concurrency, op)) / rounds
    );
    let ours = 0;
    let base = 0;
    for (let r = 0; r < rounds; r++) {
      const sides = [
        async () => (ours += await slice(() => callHello(gateway))),
        async () => (base += await slice(plainNode)),
      ];
      for (const side of r % 2 ? sides.reverse() : sides) await side();
    }
    const stats = await poolFigures(gateway, home);
    await stopServe(servers);
    out.push(
      `(e) invocations/s at concurrency ${String(concurrency).padEnd(2)}, ${seconds} s each side   ${ours.toFixed(1)}/s  (serve's defaults; ${stats.calls} calls, ${stats.cold} cold)`,
      `    plain node starting the bundle           ${base.toFixed(1)}/s`,
      `    ratio: ${(ours / base).toFixed(2)}×${concurrency === 8 ? '  (target ≥ 1.5×)' : ''}`,
    );
  }
  return out;
}

/** (f) */
async function eventLoop(home: string): Promise<string[]> {
  const entry = join(home, 'exit.mjs');
  writeFileSync(entry, '');
  const launcher = new Launcher();
  await launcher.start();
  const out: string[] = [];
  const ballast: object[] = [];
  try {
    for (const heap of ['small', 'grown']) {
      if (heap === 'grown') grow(ballast, 400);
      const mib = (process.memoryUsage().rss / 1048576).toFixed(0);
      const launched = await stalls(async () => void (await launcher.spawn({ entry, env: {} }).exit));
      // The same time with no start at all: what the machine and the garbage collector stall anyway.
      const idle = await stalls(() => new Promise((r) => setTimeout(r, launched.ms / 40)));
      const forked = await stalls(
        () =>
          new Promise<void>((resolve) => {
            spawn(process.execPath, [entry], { stdio: 'ignore' }).once('exit', () => resolve());
          }),
      );
      out.push(
        `(f) 40 starts, this process at ${mib} MiB RSS: through the launcher   event loop stalled at most ${fmt(launched.max)} (p99 ${fmt(launched.p99)}), spawn() call p50 ${fmt(launched.call)}`,
        `    child_process.spawn in this process         stalled at most ${fmt(forked.max)} (p99 ${fmt(forked.p99)}), spawn() call p50 ${fmt(forked.call)}`,
        `    no start, as long                           stalled at most ${fmt(idle.max)} (p99 ${fmt(idle.p99)})`,
      );
    }
  } finally {
    ballast.length = 0;
    await launcher.close();
  }
  return out;
}

/** Starts 40 processes one after another (`start` resolves when one exited): the event loop's delay meanwhile. */
async function stalls(start: () => Promise<void>): Promise<{ max: number; p99: number; call: number; ms: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  const calls: number[] = [];
  const since = performance.now();
  histogram.enable();
  for (let i = 0; i < 40; i++) {
    const t = performance.now();
    const exited = start();
    calls.push(performance.now() - t);
    await exited;
  }
  histogram.disable();
  // The histogram's figures are nanoseconds and include its 1 ms resolution.
  const ms = (ns: number) => Math.max(0, ns / 1e6 - 1);
  const took = performance.now() - since;
  return { max: ms(histogram.max), p99: ms(histogram.percentile(99)), call: summarize(calls).p50, ms: took };
}

/** Grows this process's heap by about `mib` MiB of small live objects (what serve's broker and state hold). */
function grow(ballast: object[], mib: number): void {
  for (let i = 0; i < mib * 1024 * 8; i++) ballast.push({ i, s: `v${i}`, a: [i, i + 1] });
}

/** Runs `cmd` and resolves with the time until it wrote its answer on stdout. */
function answered(cmd: string, args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.stdout.on('end', () =>
      out.includes('Hello Ada') ? resolve(performance.now() - t) : reject(new Error(`no reply: ${out}`)),
    );
  });
}
