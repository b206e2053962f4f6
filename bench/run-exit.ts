/**
 * How soon a one-shot `micro-fn run` instance is gone after its reply: from the moment the caller has the reply to
 * the process's exit, over NATS (`--transport nats`) against the same over HTTP (the baseline), side by side, both
 * registered in the NATS registry of one real nats-server. Target: NATS ≤ 50 ms at p50, like HTTP (it was ~2,050 ms,
 * the listener's close timeout).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectNats, createNatsTransport } from 'micro-fn/nats';
import { Metadata } from 'micro-fn';
import { startNatsServer } from '../test/nats-server.js';
import { root } from './serve.js';
import { fmt, ratio, summarize } from './stats.js';

type Mode = 'http' | 'nats';

export async function benchRunExit(n = Number(process.env.BENCH_RUNS ?? 30), warmup = 3): Promise<string[]> {
  const server = await startNatsServer({ jetstream: true });
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-'));
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    MICRO_FN_HOME: home,
    MICRO_REGISTRY: 'nats',
    MICRO_REGISTRY_ADDRESS: server.url,
  };
  // Loads the nats package before the first measured round.
  await (await connectNats({ address: server.url, name: 'bench-warm' })).close();
  const caller = createNatsTransport({ address: server.url });
  const samples: Record<Mode, number[]> = { http: [], nats: [] };
  try {
    for (let i = 0; i < warmup + n; i++) {
      for (const mode of i % 2 ? (['http', 'nats'] as const) : (['nats', 'http'] as const)) {
        const ms = await once(mode, env, caller);
        if (i >= warmup) samples[mode].push(ms);
      }
    }
  } finally {
    await caller.close?.();
    await server.cleanup();
    rmSync(home, { recursive: true, force: true });
  }
  const h = summarize(samples.http);
  const s = summarize(samples.nats);
  return [
    `micro-fn run --transport nats: exit after reply  p50 ${fmt(s.p50)}  p99 ${fmt(s.p99)}  (n=${s.n}, target ≤ 50 ms at p50)`,
    `micro-fn run (HTTP):           exit after reply  p50 ${fmt(h.p50)}  p99 ${fmt(h.p99)}`,
    `ratio at p50: ${ratio(s.p50, h.p50)}`,
  ];
}

/** Starts one instance, calls it once, and returns the milliseconds from the reply to its exit. */
async function once(mode: Mode, env: Record<string, string>, caller: ReturnType<typeof createNatsTransport>) {
  const args = [join(root, 'cli', 'bin.mjs'), 'run', 'examples/helloworld'];
  if (mode === 'nats') args.push('--transport', 'nats');
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(performance.now())));
  let err = '';
  const address = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d;
      const m = /listening on (\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`micro-fn run exited ${code}: ${err}`)));
  });
  const body = new TextEncoder().encode('{"name":"Ada"}');
  if (mode === 'http') {
    const res = await fetch(`${address}/helloworld/Greeter.Hello`, { method: 'POST', body });
    await res.arrayBuffer();
  } else {
    const request = {
      id: 'bench',
      service: 'helloworld',
      endpoint: 'Greeter.Hello',
      contentType: 'application/json',
      body,
      metadata: new Metadata(),
    };
    const response = await caller.call({ id: 'n', address, metadata: {} }, request);
    if (response.error) throw new Error(`the call failed: ${JSON.stringify(response.error)}`);
  }
  const replied = performance.now();
  return (await exited) - replied;
}
