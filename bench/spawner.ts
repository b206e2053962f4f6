/**
 * The local spawner (`micro-fn serve`, run as its own process), each figure against a baseline in the same run:
 *  (a) cold invocation (--pool 0) through the gateway vs plain `node` starting the same bundle and answering
 *      on stdout (target ≤ 1.15×);
 *  (b) warm-pool invocation p50/p99 (targets 2.5 ms / 6 ms) vs a long-running node:http server process doing
 *      the same work;
 *  (c) invocations per second at concurrency 8 vs the rate plain `node` starts the same bundle (target ≥ 0.9×),
 *      with the spawner's peak RSS.
 * BENCH_PARTS=b (letters) runs only some of them; BENCH_SECONDS sets the length of (c), 30 s by default.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLocal } from '../adapters/local/build.js';
import { readCredential } from '../runtime/plugins/local/credential.js';
import { cliRun, postJson, root, startBare, startServe, stopServe } from './serve.js';
import { fmt, rate, ratio, summarize } from './stats.js';

const BODY = '{"name":"Ada"}';

interface Options {
  seconds?: number;
  /** Which of (a), (b), (c) to run, as letters. */
  parts?: string;
}

/** What the three parts share: the CLI's environment, the servers to stop, and the plain-node baseline. */
interface Setup {
  cliEnv: Record<string, string>;
  servers: ChildProcess[];
  plainNode: () => Promise<number>;
}

export async function benchSpawner({
  seconds = Number(process.env.BENCH_SECONDS ?? 30),
  parts = process.env.BENCH_PARTS ?? 'abc',
}: Options = {}): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-'));
  // What a function process gets: MICRO_* only (no NODE_EXTRA_CA_CERTS and the like), for both sides.
  const fnEnv = { MICRO_FN_HOME: home, MICRO_REGISTRY: 'local', MICRO_BROKER: 'local' };
  const cliEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MICRO_FN_HOME: home };
  const out: string[] = [];
  const servers: ChildProcess[] = [];
  try {
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
    const setup: Setup = { cliEnv, servers, plainNode: () => timed(process.execPath, [runner], fnEnv) };
    if (parts.includes('a')) out.push(...(await cold(setup)));
    if (parts.includes('b')) out.push(...(await warm(setup)));
    if (parts.includes('c')) out.push(...(await throughput(setup, seconds)));
    return out;
  } finally {
    await stopServe(servers);
    rmSync(home, { recursive: true, force: true });
  }
}

/** (a) */
async function cold({ cliEnv, servers, plainNode }: Setup): Promise<string[]> {
  const gateway = await startServe(['--pool', '0'], cliEnv, servers);
  await cliRun(['deploy', 'examples/helloworld'], cliEnv);
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < 33; i++) {
    const t = performance.now();
    await call(gateway, 'helloworld');
    if (i >= 3) ours.push(performance.now() - t);
    const b = await plainNode();
    if (i >= 3) base.push(b);
  }
  await stopServe(servers);
  const a = summarize(ours);
  const b = summarize(base);
  return [
    `(a) cold invocation via gateway (--pool 0)   p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n})`,
    `    plain node starting the bundle           p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
    `    ratio at p50: ${ratio(a.p50, b.p50)}  (target ≤ 1.15×)`,
  ];
}

/** (b) */
async function warm({ cliEnv, servers }: Setup): Promise<string[]> {
  const gateway = await startServe(['--pool', '2'], cliEnv, servers);
  await cliRun(['deploy', 'examples/helloworld'], cliEnv);
  const bareUrl = `${await startBare(servers)}/helloworld/Greeter.Hello`;
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < 410; i++) {
    // A warm invocation: the pool is full again (its refill has finished starting). Waiting for it keeps
    // the machine lightly busy, as a spawner with traffic is; both sides are measured in that state.
    await poolFull(gateway, 'helloworld', 2, cliEnv.MICRO_FN_HOME!);
    // The baseline first: after our call the used process exits and the spawner refills (a process starting),
    // and the baseline must not pay for that.
    const tb = performance.now();
    await post(bareUrl);
    if (i >= 10) base.push(performance.now() - tb);
    const t = performance.now();
    await call(gateway, 'helloworld');
    if (i >= 10) ours.push(performance.now() - t);
  }
  await stopServe(servers);
  const a = summarize(ours);
  const b = summarize(base);
  return [
    `(b) warm-pool invocation via gateway         p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n}; targets 2.5 ms / 6 ms)`,
    `    long-running node:http server process    p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
    `    ratio at p50: ${ratio(a.p50, b.p50)}`,
  ];
}

/** (c) */
async function throughput({ cliEnv, servers, plainNode }: Setup, seconds: number): Promise<string[]> {
  const gateway = await startServe(['--pool', '8', '--concurrency', '8', '--quiet'], cliEnv, servers);
  await cliRun(['deploy', 'examples/helloworld'], cliEnv);
  const serveChild = servers[servers.length - 1]!;
  // Six alternating slices each, so both sides see the same machine: its speed drifts over a minute. Each
  // slice starts with an uncounted second, so the pool a slice inherits full does not count for it.
  const rounds = 6;
  const slice = async (op: () => Promise<unknown>) => (
    await rate(1, 8, op),
    (await rate(seconds / rounds, 8, op)) / rounds
  );
  let ours = 0;
  let base = 0;
  for (let r = 0; r < rounds; r++) {
    const sides = [
      async () => (ours += await slice(() => call(gateway, 'helloworld'))),
      async () => (base += await slice(plainNode)),
    ];
    for (const side of r % 2 ? sides.reverse() : sides) await side();
  }
  const peak = peakRss(serveChild.pid!);
  await stopServe(servers);
  return [
    `(c) invocations/s at concurrency 8, ${seconds} s each in ${rounds} alternating slices   ${ours.toFixed(1)}/s  (spawner peak RSS ${peak})`,
    `    plain node starts of the bundle          ${base.toFixed(1)}/s`,
    `    ratio: ${(ours / base).toFixed(2)}×  (target ≥ 0.9×)`,
  ];
}

function timed(cmd: string, args: string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    // Answered: the reply is on stdout (the process may still be exiting, as the spawner's may).
    child.stdout.on('end', () =>
      out.includes('Hello Ada') ? resolve(performance.now() - t) : reject(new Error(`no reply: ${out}`)),
    );
  });
}

const post = (url: string): Promise<string> => postJson(url, BODY);

function call(gateway: string, service: string): Promise<string> {
  return post(`${gateway}/${service}/Greeter.Hello`);
}

/** Resolves once function `name` of the serve at `gateway` (its MICRO_FN_HOME: `home`) has `size` warm processes. */
export async function poolFull(gateway: string, name: string, size: number, home: string): Promise<void> {
  // The control service needs serve's credential, as the CLI sends it.
  const headers = { authorization: `Bearer ${readCredential(home)!.control}` };
  for (;;) {
    const res = await fetch(`${gateway}/micro-fn/Runtime.List`, { method: 'POST', body: '{}', headers });
    const { functions } = (await res.json()) as { functions: { name: string; stats: { warm: number } }[] };
    if ((functions.find((f) => f.name === name)?.stats.warm ?? 0) >= size) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Peak resident set of a process (VmHWM), as Linux reports it. */
function peakRss(pid: number): string {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? `${(Number(m[1]) / 1024).toFixed(1)} MiB` : 'unknown';
}
