/**
 * What tracing costs a call through the gateway: two serve processes on this machine, helloworld deployed to each,
 * one whose functions export their spans (OTEL_EXPORTER_OTLP_ENDPOINT, to a local OTLP receiver in this process)
 * and one without, measured in turns so both see the same machine state. Every call finds a full warm pool and
 * sends a sampled `traceparent`, so the traced side records a server span and hands it to serve over its pipe (after
 * its reply, before its process exits), which exports it in batches; the other passes the header through. The
 * receiver's count says the spans did arrive.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOtlpReceiver } from '../test/otlp-receiver.js';
import { callHello, cliRun, startServe, stopServe } from './serve.js';
import { poolFull } from './spawner.js';
import { fmt, summarize } from './stats.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

interface Side {
  home: string;
  gateway: string;
}

export async function benchTrace({ calls = Number(process.env.BENCH_CALLS ?? 400) } = {}): Promise<string[]> {
  const servers: ChildProcess[] = [];
  const homes: string[] = [];
  const receiver = await startOtlpReceiver();
  const side = async (name: string, extra: Record<string, string>): Promise<Side> => {
    const home = mkdtempSync(join(tmpdir(), `micro-fn-bench-trace-${name}-`));
    homes.push(home);
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MICRO_FN_HOME: home, ...extra };
    const gateway = await startServe(['--pool', '2', '--concurrency', '8'], env, servers);
    await cliRun(['deploy', 'examples/helloworld'], env);
    return { home, gateway };
  };
  try {
    const off = await side('off', {});
    const on = await side('on', { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
    const sides = [off, on];
    const samples = new Map<Side, number[]>(sides.map((s) => [s, []]));
    for (let i = 0; i < calls + 10; i++) {
      for (const s of i % 2 ? [...sides].reverse() : sides) {
        await poolFull(s.gateway, 'helloworld', 2, s.home);
        const t = performance.now();
        await callHello(s.gateway, { traceparent: TRACEPARENT });
        if (i >= 10) samples.get(s)!.push(performance.now() - t);
      }
    }
    // serve sends its functions' spans in batches (200 ms apart): the last ones are given a moment to arrive.
    for (let waited = 0; receiver.spans.length < calls + 10 && waited < 3000; waited += 50)
      await new Promise((r) => setTimeout(r, 50));
    const a = summarize(samples.get(off)!);
    const b = summarize(samples.get(on)!);
    const more = (x: number, y: number) => `${(((x - y) / y) * 100).toFixed(1)}%`;
    return [
      `warm-pool call via gateway, tracing off        p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n})`,
      `tracing exporting (OTLP/HTTP to 127.0.0.1)     p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}  (n=${b.n})`,
      `tracing costs at p50: ${more(b.p50, a.p50)}, at p99: ${more(b.p99, a.p99)}; spans received: ${receiver.spans.length} of ${calls + 10} calls`,
    ];
  } finally {
    await stopServe(servers);
    await receiver.close();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  }
}
