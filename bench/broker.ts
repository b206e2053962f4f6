/**
 * serve's durable broker vs the MemoryBroker it replaces, side by side in one run:
 *  (a) in process, the broker alone: publish latency p50/p99 (one publish at a time, to a topic whose queue group
 *      acks at once; target p50 ≤ 1 ms on this disk) and publish → handled throughput (10,000 messages, 64 in flight);
 *  (b) through serve, as a user meets it: publish → handled throughput with real function processes (a serve runtime
 *      with each broker, the same function deployed to both, 300 messages published through the gateway; target
 *      ≥ 0.8×);
 *  (c) the peak RSS of a real `micro-fn serve` process after 10,000 publishes of 16 KiB: all 10,000 waiting on
 *      disk vs none waiting (target: flat), and, for reference, what a process whose MemoryBroker holds the same
 *      10,000 waiting grows by.
 * BENCH_PARTS=ac (letters) runs only some of them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Broker } from '../runtime/core/broker.js';
import { createFileRegistry } from '../runtime/plugins/local/registry.js';
import { createMemoryBroker } from '../runtime/plugins/memory/broker.js';
import { openDurableBroker } from '../serve/broker/durable-broker.js';
import { LocalRuntime } from '../serve/runtime.js';
import { cliRun, root, startServe, stopServe } from './serve.js';
import { fmt, ratio, sideBySide, summarize } from './stats.js';

const body = new TextEncoder().encode(JSON.stringify({ id: 1, name: 'Ada', note: 'x'.repeat(200) }));

export async function benchBroker(parts = process.env.BENCH_PARTS ?? 'abc'): Promise<string[]> {
  const out: string[] = [];
  if (parts.includes('a')) out.push(...(await inProcess()));
  if (parts.includes('b')) out.push(...(await throughServe()));
  if (parts.includes('c')) out.push(...(await rss()));
  return out;
}

/** (a) The brokers alone, in this process. */
async function inProcess(): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-broker-'));
  const durable = await openDurableBroker({ home, prefetch: 64 });
  const memory = createMemoryBroker();
  try {
    const counters = new Map<Broker, { handled: number; wake?: () => void }>();
    for (const broker of [memory, durable]) {
      const counter: { handled: number; wake?: () => void } = { handled: 0 };
      counters.set(broker, counter);
      await broker.subscribe('bench.latency', () => {}, { queue: 'g' });
      await broker.subscribe(
        'bench.throughput',
        () => {
          counter.handled++;
          counter.wake?.();
        },
        { queue: 'g' },
      );
    }
    const [memoryLatency, durableLatency] = await sideBySide(
      2000,
      200,
      () => memory.publish('bench.latency', { body }),
      () => durable.publish('bench.latency', { body }),
    );
    const m = summarize(memoryLatency);
    const d = summarize(durableLatency);

    const N = 10_000;
    const run = async (broker: Broker) => {
      const counter = counters.get(broker)!;
      counter.handled = 0;
      const all = new Promise<void>((resolve) => (counter.wake = () => counter.handled >= N && resolve()));
      const start = performance.now();
      let next = 0;
      const publisher = async () => {
        while (next++ < N) await broker.publish('bench.throughput', { body });
      };
      await Promise.all(Array.from({ length: 64 }, publisher));
      await all;
      return N / ((performance.now() - start) / 1000);
    };
    const rates = { memory: [] as number[], durable: [] as number[] };
    for (let round = 0; round < 3; round++) {
      rates.memory.push(await run(memory));
      rates.durable.push(await run(durable));
    }
    const best = (xs: number[]) => Math.max(...xs);
    return [
      `(a) publish latency, one at a time       durable p50 ${fmt(d.p50)} p99 ${fmt(d.p99)}   memory p50 ${fmt(m.p50)} p99 ${fmt(m.p99)}   (target: durable p50 ≤ 1 ms)`,
      `(a) publish → handled, broker alone     durable ${best(rates.durable).toFixed(0)}/s   memory ${best(rates.memory).toFixed(0)}/s   ${ratio(best(rates.durable), best(rates.memory))} (best of 3 each, ${N} messages, 64 in flight)`,
    ];
  } finally {
    await Promise.allSettled([memory.close(), durable.close()]);
    rmSync(home, { recursive: true, force: true });
  }
}

/** (b) publish → handled through serve's gateway, one function process per message, with each broker. */
async function throughServe(): Promise<string[]> {
  const N = 300;
  const setups = await Promise.all(['memory', 'durable'].map((kind) => serveWith(kind as 'memory' | 'durable')));
  try {
    const rates = new Map<string, number[]>(setups.map((s) => [s.kind, []]));
    for (let round = 0; round < 2; round++) {
      for (const setup of round % 2 ? [...setups].reverse() : setups) {
        const dir = mkdtempSync(join(tmpdir(), 'micro-fn-bench-handled-'));
        chmodSync(dir, 0o777); // the function user writes here
        try {
          const start = performance.now();
          await publishAll(
            setup.runtime.address,
            'backlog.slow',
            Array.from({ length: N }, (_, n) => ({ dir, n, ms: 0 })),
          );
          const file = join(dir, 'handled');
          while ((existsSync(file) ? readFileSync(file, 'utf8').split('\n').length - 1 : 0) < N)
            await new Promise((r) => setTimeout(r, 20));
          rates.get(setup.kind)!.push(N / ((performance.now() - start) / 1000));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
    const best = (kind: string) => Math.max(...rates.get(kind)!);
    return [
      `(b) publish → handled through serve      durable ${best('durable').toFixed(1)}/s   memory ${best('memory').toFixed(1)}/s   ${ratio(best('durable'), best('memory'))} (target ≥ 0.8×; ${N} messages, a function process each, --concurrency 4, best of 2)`,
    ];
  } finally {
    for (const s of setups) await s.close();
  }
}

async function serveWith(kind: 'memory' | 'durable') {
  const home = mkdtempSync(join(tmpdir(), `micro-fn-bench-${kind}-`));
  const registry = createFileRegistry({ home });
  const broker = kind === 'durable' ? await openDurableBroker({ home, prefetch: 4 }) : createMemoryBroker();
  const runtime = new LocalRuntime({
    home,
    registry,
    broker,
    deadLetters: kind === 'durable' ? (broker as Awaited<ReturnType<typeof openDurableBroker>>).deadLetters : undefined,
    address: '127.0.0.1:0',
    env: { MICRO_FN_HOME: home },
    pool: 4,
    concurrency: 4,
    queue: 64,
    timeout: 30_000,
    memory: 256,
    ttl: 60,
    echo: false,
  });
  await runtime.start();
  const cliEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MICRO_FN_HOME: home };
  await cliRun(['deploy', 'test/fixtures/backlog', '--target', 'local', '--runtime', runtime.address], cliEnv);
  return {
    kind,
    runtime,
    async close() {
      await runtime.stop();
      await Promise.allSettled([broker.close(), registry.close?.()]);
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/**
 * (c) serve's peak RSS with 10,000 messages waiting vs none, after the same 10,000 publishes: one serve keeps them
 * all (nobody subscribes; --retention 24h), the other drops each within a second (--retention 1s), so none waits.
 */
async function rss(): Promise<string[]> {
  const N = 10_000;
  const pad = 'x'.repeat(16 * 1024);
  const servers: ChildProcess[] = [];
  const homes: string[] = [];
  const run = async (retention: string) => {
    const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-rss-'));
    homes.push(home);
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MICRO_FN_HOME: home };
    const address = await startServe(['--retention', retention], env, servers);
    const pid = servers.at(-1)!.pid!;
    const idle = memoryOf(pid);
    await publishAll(
      address,
      'bench.kept',
      Array.from({ length: N }, (_, n) => ({ n, pad })),
    );
    await new Promise((r) => setTimeout(r, 1500)); // --retention 1s: the last ones dropped too
    return { idle, after: memoryOf(pid) };
  };
  try {
    const waiting = await run('24h');
    const none = await run('1s');
    const reference = await memoryBrokerGrowth(N, pad);
    return [
      `(c) serve peak RSS after 10,000 publishes of 16 KiB: 10,000 waiting ${mib(waiting.after.peak)}   none waiting ${mib(none.after.peak)}   ${ratio(waiting.after.peak, none.after.peak)} (target: flat; idle ${mib(waiting.idle.rss)} and ${mib(none.idle.rss)}; the rest is the gateway's traffic, the same in both)`,
      `(c) reference: a MemoryBroker process holding the same 10,000 waiting grows by ${mib(reference)}`,
    ];
  } finally {
    await stopServe(servers);
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  }
}

/** RSS growth of a process whose MemoryBroker holds `n` messages of `pad` that its one subscriber does not settle. */
async function memoryBrokerGrowth(n: number, pad: string): Promise<number> {
  const script = `
    import { readFileSync } from 'node:fs';
    const { createMemoryBroker } = await import(${JSON.stringify(join(root, 'dist/runtime/plugins/memory/index.js'))});
    const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    const broker = createMemoryBroker();
    // Held, as serve's pools held the messages they had taken and not yet run.
    const held = [];
    await broker.subscribe('t', (d) => void held.push(d), { queue: 'g', ack: 'manual' });
    const before = rss();
    const pad = ${JSON.stringify(pad)};
    for (let i = 0; i < ${n}; i++) await broker.publish('t', { body: new TextEncoder().encode(JSON.stringify({ n: i, pad })) });
    await new Promise((r) => setTimeout(r, 100));
    console.log(rss() - before);`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d));
    child.on('exit', (code) => (code === 0 ? resolve(Number(text.trim())) : reject(new Error(`exit ${code}`))));
  });
}

/** Publishes through serve's gateway (Broker.Publish), 16 at a time. */
async function publishAll(address: string, topic: string, payloads: unknown[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < payloads.length) {
      const payload = payloads[next++];
      const res = await fetch(`${address}/micro-fn/Broker.Publish`, {
        method: 'POST',
        body: JSON.stringify({ topic, payload }),
        headers: { 'content-type': 'application/json' },
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`publish: ${res.status} ${text}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
