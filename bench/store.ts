/**
 * The local store (issue 17), side by side in one run:
 *  (a) get and set p50/p99 from a warm function process under a real `micro-fn serve` (ctx.store: the local store
 *      plugin, over the function's pipe to serve, LMDB in serve) vs the same operation on lmdb directly in this process
 *      (a get; a set as one synchronous, flushed transaction, what serve does for each set). Rounds alternate: 50
 *      operations in the function, then 50 on lmdb. Target (the issue's): ≤ 1.2× — not reachable across processes.
 *  (b) examples/counter: 100 concurrent one-shot invocations through serve: total time and conflicts retried, vs
 *      the same 100 invocations of helloworld (no store: what the processes cost).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliRun, startServe, stopServe } from './serve.js';
import { fmt, ratio, summarize } from './stats.js';

const ROUNDS = 20;
const PER_ROUND = 50;

export async function benchStore(): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-store-'));
  const servers: ChildProcess[] = [];
  const env = { ...process.env, MICRO_FN_HOME: home } as Record<string, string>;
  const { open } = await import('lmdb');
  const bare = open({ path: join(home, 'bare'), maxDbs: 4 });
  const db = bare.openDB<unknown, string>({ name: 'kv' });
  try {
    const gateway = await startServe(
      ['--pool', '2', '--concurrency', '8', '--queue', '200', '--timeout', '5m'],
      env,
      servers,
    );
    await cliRun(['deploy', 'test/fixtures/store-ops'], env);
    await cliRun(['deploy', 'examples/counter'], env);
    await cliRun(['deploy', 'examples/helloworld'], env);
    const out: string[] = [];
    for (const op of ['get', 'set'] as const) {
      const fn: number[] = [];
      const lmdb: number[] = [];
      db.putSync('bench', { i: 0, note: 'x'.repeat(100) });
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
          if (op === 'get') db.get('bench');
          else bare.transactionSync(() => db.putSync('bench', { i, note: 'x'.repeat(100) }));
          lmdb.push(performance.now() - t);
        }
      }
      const f = summarize(fn);
      const l = summarize(lmdb);
      out.push(
        `store ${op}: function p50 ${fmt(f.p50)} p99 ${fmt(f.p99)} | lmdb directly p50 ${fmt(l.p50)} p99 ${fmt(l.p99)} | p50 ${ratio(f.p50, l.p50)} (n=${f.n} each)`,
      );
    }
    // The baseline: the same 100 one-shot invocations of a function that touches no store (the processes' cost).
    const hundred = async (path: string, body: string) => {
      const start = performance.now();
      const replies = await Promise.all(
        Array.from({ length: 100 }, async () => {
          const res = await fetch(`${gateway}/${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
          });
          if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
          return (await res.json()) as { value: number; conflicts: number };
        }),
      );
      return { replies, ms: performance.now() - start };
    };
    const hello = await hundred('helloworld/Greeter.Hello', '{"name":"Ada"}');
    const { replies, ms } = await hundred('counter/Counter.Increment', '{}');
    const max = Math.max(...replies.map((r) => r.value));
    const conflicts = replies.reduce((n, r) => n + (r.conflicts ?? 0), 0);
    out.push(
      `counter: 100 concurrent invocations in ${(ms / 1000).toFixed(2)} s, ended at ${max}, ${conflicts} conflicts retried | helloworld (no store) ${(hello.ms / 1000).toFixed(2)} s | ${ratio(ms, hello.ms)}`,
    );
    return out;
  } finally {
    await stopServe(servers);
    await bare.close();
    rmSync(home, { recursive: true, force: true });
  }
}
