/**
 * NATS, each figure against a baseline in the same run, on a real nats-server (Debian's package):
 *  (a) NATS transport call (client -> request/reply -> dispatcher -> handler -> reply) vs a bare `nats`
 *      request/reply JSON echo on the same server (target ≤ 1.15× at p50, issue 18);
 *  (b) JetStream-triggered one-shot invocations per second through the spawner (`micro-fn serve --broker
 *      jetstream`) vs the same spawner triggered by its embedded broker;
 *  (c) the NATS registry after 1000 one-shot instances of a service (each registers once and deregisters):
 *      messages left in its bucket and getService p50, with delete markers swept vs left, side by side.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// The package as users load it (dist/, built by `npm run bench`), not the sources through tsx.
import { createClient, createService } from 'micro-fn';
import { connectNats, createNatsRegistry, createNatsTransport } from 'micro-fn/nats';
import { createMemoryRegistry } from 'micro-fn/memory';
import { startNatsServer, type NatsServer } from '../test/nats-server.js';
import { cliRun, startServe, stopServe } from './serve.js';
import { fmt, ratio, sideBySide, summarize } from './stats.js';
import type { ChildProcess } from 'node:child_process';

export async function benchNats(n = 5000, messages = Number(process.env.BENCH_MESSAGES ?? 400)): Promise<string[]> {
  const server = await startNatsServer();
  try {
    return [...(await transport(server, n)), ...(await triggers(server, messages)), ...(await markers(server))];
  } finally {
    await server.cleanup();
  }
}

export async function transport(server: NatsServer, n: number): Promise<string[]> {
  const nc = await connectNats({ address: server.url, name: 'bare-echo' });
  const sub = nc.subscribe('bare.echo', {
    callback: (_err, msg) => {
      const { name } = JSON.parse(new TextDecoder().decode(msg.data)) as { name: string };
      msg.respond(new TextEncoder().encode(JSON.stringify({ message: `Hello ${name}` })));
    },
  });
  const caller = await connectNats({ address: server.url, name: 'bare-caller' });
  const registry = createMemoryRegistry();
  const natsTransport = createNatsTransport({ address: server.url });
  const service = createService(
    { name: 'helloworld', handlers: { Greeter: { Hello: (r: { name: string }) => ({ message: `Hello ${r.name}` }) } } },
    { registry, transport: natsTransport },
  );
  await service.start();
  const client = createClient({ registry, transports: [natsTransport] });
  try {
    const payload = new TextEncoder().encode(JSON.stringify({ name: 'Ada' }));
    const [ours, base] = await sideBySide(
      n,
      500,
      () => client.call('helloworld', 'Greeter.Hello', { name: 'Ada' }),
      async () =>
        JSON.parse(new TextDecoder().decode((await caller.request('bare.echo', payload, { timeout: 5000 })).data)),
    );
    const a = summarize(ours);
    const b = summarize(base);
    return [
      `(a) micro-fn client.call over NATS          p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n})`,
      `    bare nats request/reply JSON echo        p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
      `    ratio at p50: ${ratio(a.p50, b.p50)}  (target ≤ 1.15×)   at p99: ${ratio(a.p99, b.p99)}`,
    ];
  } finally {
    await service.stop();
    await natsTransport.close?.();
    sub.unsubscribe();
    await Promise.all([nc.close(), caller.close()]);
  }
}

/** Messages handled per second by the events example: `count` published through the gateway, all at once. */
async function triggers(server: NatsServer, count: number): Promise<string[]> {
  const rates: Record<string, number> = {};
  for (const broker of ['jetstream', 'local']) {
    const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-'));
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      MICRO_FN_HOME: home,
      MICRO_BROKER: broker,
      MICRO_BROKER_ADDRESS: server.url,
    };
    const servers: ChildProcess[] = [];
    try {
      const gateway = await startServe(['--pool', '8', '--concurrency', '8'], env, servers);
      await cliRun(['deploy', 'examples/events'], env);
      const log = join(home, 'logs', 'events.log');
      const handled = () => (existsSync(log) ? (readFileSync(log, 'utf8').match(/ created/g)?.length ?? 0) : 0);
      const t = performance.now();
      for (let i = 0; i < count; i += 50) {
        const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) => publish(gateway, { id: i + j }));
        await Promise.all(batch);
      }
      const deadline = Date.now() + 120_000;
      while (handled() < count) {
        if (Date.now() > deadline)
          throw new Error(`${broker}: only ${handled()} of ${count} messages handled in 120 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
      rates[broker] = count / ((performance.now() - t) / 1000);
    } finally {
      await stopServe(servers);
      rmSync(home, { recursive: true, force: true });
    }
  }
  const js = rates.jetstream!;
  const local = rates.local!;
  return [
    `(b) JetStream-triggered one-shot invocations   ${js.toFixed(1)}/s  (${count} messages, pool 8, concurrency 8)`,
    `    same spawner, embedded broker              ${local.toFixed(1)}/s`,
    `    ratio: ${(js / local).toFixed(2)}×`,
  ];
}

async function markers(server: NatsServer, instances = 1000): Promise<string[]> {
  const node = (id: string) => ({
    name: 'oneshot',
    version: 'latest',
    metadata: {},
    endpoints: [],
    nodes: [{ id, address: 'http://127.0.0.1:1', metadata: {} }],
  });
  // The default markerAge (swept), and one no run outlives (markers left, as before sweeping).
  const sides = { swept: { bucket: 'bench_swept', markerAge: 5000 }, left: { bucket: 'bench_left', markerAge: 1e12 } };
  const registries = Object.values(sides).map(({ bucket, markerAge }) =>
    createNatsRegistry({ address: server.url, bucket, markerAge }),
  );
  for (const registry of registries) {
    await registry.register(node('live'));
    for (let i = 0; i < instances; i += 50) {
      await Promise.all(
        Array.from(
          { length: 50 },
          async (_, j) => (await registry.register(node(`i${i + j}`)), await registry.deregister(node(`i${i + j}`))),
        ),
      );
    }
  }
  // Instances keep coming: the next one after markerAge sweeps what the first ones left.
  await new Promise((r) => setTimeout(r, sides.swept.markerAge + 500));
  for (const registry of registries)
    await registry.register(node('next')).then(() => registry.deregister(node('next')));
  for (const registry of registries) await registry.close();
  // nats-server 2.9 keeps its per-subject state of removed keys in memory until it restarts: read after one.
  await server.restart();
  const nc = await connectNats({ address: server.url, name: 'bench-markers' });
  const jsm = await nc.jetstreamManager();
  const out: string[] = [];
  const p50: Record<string, number> = {};
  for (const [name, { bucket }] of Object.entries(sides)) {
    const registry = createNatsRegistry({ connection: nc, bucket });
    const samples: number[] = [];
    for (let i = 0; i < 60; i++) {
      const t = performance.now();
      await registry.getService('oneshot');
      if (i >= 10) samples.push(performance.now() - t);
    }
    p50[name] = summarize(samples).p50;
    const stored = (await jsm.streams.info(`KV_${bucket}`)).state.messages;
    out.push(
      `    markers ${name.padEnd(5)}  ${String(stored).padStart(5)} messages in the bucket, getService p50 ${fmt(p50[name]!)}`,
    );
    await registry.close();
  }
  await nc.close();
  return [
    `(c) registry after ${instances} one-shot instances, read after a server restart`,
    ...out,
    `    ratio swept / left at p50: ${ratio(p50.swept!, p50.left!)}`,
  ];
}

async function publish(gateway: string, payload: unknown): Promise<void> {
  const res = await fetch(`${gateway}/micro-fn/Broker.Publish`, {
    method: 'POST',
    body: JSON.stringify({ topic: 'user.created', payload }),
    headers: { 'content-type': 'application/json' },
  });
  if (res.status !== 200) throw new Error(`publish: ${res.status} ${await res.text()}`);
}
