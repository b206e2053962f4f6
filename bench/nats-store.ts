/**
 * The NATS store (issue 17), side by side in one run on a real nats-server:
 *  (a) get and set p50/p99 from a warm function process under a real `micro-fn serve --store nats` (ctx.store: the
 *      nats store plugin, its own connection from the function process) vs the same operation with nats.js's KV
 *      directly in this process (`kv.get`, `kv.put` on a bucket opened as the plugin opens it). Rounds alternate: 50
 *      operations in the function, then 50 bare. Target (the issue's): ≤ 1.2×. A third side runs the same bare
 *      operations in a fresh `node` process per round (its first 5 dropped, as the function's are), since a function's
 *      process is new at each invocation while this one has run the client thousands of times (its code optimized).
 *  (b) examples/counter: 100 concurrent one-shot invocations through that serve: total time and conflicts retried.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { startNatsServer } from '../test/nats-server.js';
import { cliRun, root, startServe, stopServe } from './serve.js';
import { fmt, ratio, summarize } from './stats.js';

const ROUNDS = 20;
const PER_ROUND = 50;

/** The bare operations in a process of their own: `node -e FRESH <url> <op> <n>` prints the n times as JSON. */
const FRESH = `
const { connect } = require('nats');
(async () => {
  const [url, op, n] = process.argv.slice(1);
  const nc = await connect({ servers: url });
  const kv = await nc.jetstream().views.kv('bench_bare', { history: 1, allow_direct: false });
  const samples = [];
  for (let i = 0; i < Number(n); i++) {
    const t = performance.now();
    if (op === 'get') (await kv.get('bench'))?.string();
    else await kv.put('bench', JSON.stringify({ i, note: 'x'.repeat(100) }));
    samples.push(performance.now() - t);
  }
  console.log(JSON.stringify(samples));
  await nc.close();
})();
`;

function freshSamples(url: string, op: string, n: number): Promise<number[]> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['-e', FRESH, url, op, String(n)], { cwd: root, timeout: 30_000 }, (err, stdout) =>
      err ? reject(err) : resolve(JSON.parse(stdout) as number[]),
    ),
  );
}

export async function benchNatsStore(): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-nats-store-'));
  const servers: ChildProcess[] = [];
  const nats = await startNatsServer();
  const env = {
    ...process.env,
    MICRO_FN_HOME: home,
    MICRO_STORE: 'nats',
    MICRO_STORE_ADDRESS: nats.url,
  } as Record<string, string>;
  const nc = await connect({ servers: nats.url });
  try {
    const kv = await nc.jetstream().views.kv('bench_bare', { history: 1, allow_direct: false });
    const gateway = await startServe(
      ['--pool', '2', '--concurrency', '8', '--queue', '200', '--timeout', '5m'],
      env,
      servers,
    );
    await cliRun(['deploy', 'test/fixtures/store-ops'], env);
    await cliRun(['deploy', 'examples/counter'], env);
    const out: string[] = [];
    const value = (i: number) => JSON.stringify({ i, note: 'x'.repeat(100) });
    for (const op of ['get', 'set'] as const) {
      const fn: number[] = [];
      const bare: number[] = [];
      const fresh: number[] = [];
      await kv.put('bench', value(0));
      for (let round = 0; round < ROUNDS; round++) {
        // Each call is one invocation of a fresh (warm) process: its first 5 operations open the plugin, dropped.
        const res = await fetch(`${gateway}/store-ops/Ops.Time`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ op, n: PER_ROUND + 5 }),
        });
        if (res.status !== 200) throw new Error(`Ops.Time: ${res.status} ${await res.text()}`);
        fn.push(...((await res.json()) as { samples: number[] }).samples.slice(5));
        for (let i = 0; i < PER_ROUND; i++) {
          const t = performance.now();
          if (op === 'get') (await kv.get('bench'))?.string();
          else await kv.put('bench', value(i));
          bare.push(performance.now() - t);
        }
        fresh.push(...(await freshSamples(nats.url, op, PER_ROUND + 5)).slice(5));
      }
      const f = summarize(fn);
      const b = summarize(bare);
      const n = summarize(fresh);
      out.push(
        `nats store ${op}: function p50 ${fmt(f.p50)} p99 ${fmt(f.p99)} | nats.js KV directly p50 ${fmt(b.p50)} p99 ${fmt(b.p99)} | p50 ${ratio(f.p50, b.p50)} (n=${f.n} each)`,
        `    nats.js KV directly in a fresh process per round, as the function's is: p50 ${fmt(n.p50)} p99 ${fmt(n.p99)} | function p50 ${ratio(f.p50, n.p50)}`,
      );
    }
    const start = performance.now();
    const replies = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const res = await fetch(`${gateway}/counter/Counter.Increment`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        });
        if (res.status !== 200) throw new Error(`Counter.Increment: ${res.status} ${await res.text()}`);
        return (await res.json()) as { value: number; conflicts: number };
      }),
    );
    const ms = performance.now() - start;
    const max = Math.max(...replies.map((r) => r.value));
    const conflicts = replies.reduce((n, r) => n + r.conflicts, 0);
    out.push(
      `counter on the nats store: 100 concurrent invocations in ${(ms / 1000).toFixed(2)} s, ended at ${max}, ${conflicts} conflicts retried`,
    );
    return out;
  } finally {
    await stopServe(servers);
    await nc.close();
    await nats.cleanup();
    rmSync(home, { recursive: true, force: true });
  }
}
