/**
 * What serve's request log and stats cost a warm call: the gateway's warm-call p50/p99 through a serve that makes an
 * event per invocation, counts it (Runtime.Stats) and prints its request-log line on a pipe that is read (as a
 * terminal or a log collector reads it), against a serve that does none of it (MICRO_FN_OBSERVE=0,
 * --no-request-log), calls alternating between the two in one run. Target: ≤ 3 % at p50 and p99.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliRun, startServe, stopServe } from './serve.js';
import { poolFull } from './spawner.js';
import { fmt, summarize } from './stats.js';
import { Invocations, type InvocationEvent } from '../serve/observe/event.js';
import { StatsCollector } from '../serve/observe/stats.js';
import { invocationLine } from '../serve/observe/request-log.js';

const call = async (gateway: string) => {
  const res = await fetch(`${gateway}/helloworld/Greeter.Hello`, { method: 'POST', body: '{"name":"Ada"}' });
  await res.text();
  if (res.status !== 200) throw new Error(`helloworld answered ${res.status}`);
};

export async function benchObserve(n = Number(process.env.BENCH_CALLS ?? 400)): Promise<string[]> {
  const servers: ChildProcess[] = [];
  const homes = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'micro-fn-bench-')));
  const base = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
  try {
    const envs = homes.map((home) => ({ ...base, MICRO_FN_HOME: home }));
    const on = await startServe(['--pool', '2'], envs[0]!, servers, { readStdout: true });
    const off = await startServe(['--pool', '2', '--no-request-log'], { ...envs[1]!, MICRO_FN_OBSERVE: '0' }, servers, {
      readStdout: true,
    });
    for (const env of envs) await cliRun(['deploy', 'examples/helloworld'], env);
    const samples: Record<'on' | 'off', number[]> = { on: [], off: [] };
    const sides = [
      ['on', on, homes[0]!],
      ['off', off, homes[1]!],
    ] as const;
    for (let i = 0; i < n + 20; i++) {
      for (const [side, gateway, home] of i % 2 ? [...sides].reverse() : sides) {
        await poolFull(gateway, 'helloworld', 2, home); // a warm call each time, as in bench/spawner.ts (b)
        const t = performance.now();
        await call(gateway);
        if (i >= 20) samples[side].push(performance.now() - t);
      }
    }
    const a = summarize(samples.on);
    const b = summarize(samples.off);
    const each = perEvent();
    const pct = (x: number, y: number) => `${x >= y ? '+' : ''}${(((x - y) / y) * 100).toFixed(1)} %`;
    return [
      `warm call, request log + stats on    p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n})`,
      `warm call, request log + stats off   p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
      `cost: p50 ${pct(a.p50, b.p50)}, p99 ${pct(a.p99, b.p99)} (target ≤ 3 %)`,
      `in-process: ${fmt(each)} per invocation (event, stats, the line formatted), ${((each / b.p50) * 100).toFixed(2)} % of the warm call's p50 off`,
    ];
  } finally {
    await stopServe(servers);
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  }
}

/** What serve spends per invocation on its event and consumers, in ms: 200,000 events, the line not written. */
function perEvent(): number {
  const hub = new Invocations();
  const stats = new StatsCollector();
  let bytes = 0;
  hub.on((e) => stats.record(e));
  hub.on((e) => (bytes += invocationLine(e, false).length));
  const count = 200_000;
  const t = performance.now();
  for (let i = 0; i < count; i++) {
    const event: InvocationEvent = {
      at: Date.now(),
      function: 'helloworld',
      kind: 'call',
      id: `id-${i}`,
      endpoint: 'Greeter.Hello',
      topic: undefined,
      attempt: undefined,
      status: 200,
      ok: true,
      started: true,
      cold: false,
      ms: 1 + (i % 100) / 10,
      error: undefined,
    };
    hub.emit(event);
  }
  const ms = (performance.now() - t) / count;
  if (bytes === 0) throw new Error('no line formatted');
  return ms;
}
