/**
 * The NATS store end to end: two `micro-fn serve` hosts on one real NATS (`--store nats`), examples/counter deployed
 * on both, its one-shot processes (confined, another user) incrementing one counter in the JetStream KV bucket by
 * compare-and-set; `micro-fn store` reading the same bucket.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, controlHeaders, lastJson, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../nats-server.js';

const hosts = suite('examples/counter on two micro-fn serve hosts with --store nats');
let nats: NatsServer;
const homes: ReturnType<typeof tempHome>[] = [];
const serves: { proc: Running; gateway: string; env: Record<string, string>; home: string }[] = [];

async function host(): Promise<(typeof serves)[number]> {
  const home = tempHome();
  homes.push(home);
  // The store's address is the registry's: MICRO_STORE_ADDRESS is not needed when the registry is on NATS.
  const env = {
    MICRO_REGISTRY: 'nats',
    MICRO_REGISTRY_ADDRESS: nats.url,
    MICRO_BROKER: 'jetstream',
    MICRO_FN_HOME: home.home,
  };
  const proc = start(
    [
      'serve',
      '--address',
      '127.0.0.1:0',
      '--store',
      'nats',
      '--quiet',
      '--concurrency',
      '8',
      '--queue',
      '200',
      '--timeout',
      '5m',
    ],
    env,
  );
  const [, gateway] = await proc.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const h = { proc, gateway: gateway!, env: { ...env, MICRO_STORE: 'nats' }, home: home.home };
  serves.push(h);
  return h;
}

const ok = async (args: string[], env: Record<string, string>) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const increment = async (gateway: string, key: string) => {
  const res = await fetch(`${gateway}/counter/Counter.Increment`, {
    method: 'POST',
    body: JSON.stringify({ key }),
    headers: { 'content-type': 'application/json' },
  });
  const body = (await res.json()) as { value: number; conflicts: number };
  assert.is(res.status, 200, JSON.stringify(body));
  return body;
};

/** The counter's invocations a host ran (its Runtime.Stats). */
const invocations = async (h: (typeof serves)[number]) => {
  const res = await fetch(`${h.gateway}/micro-fn/Runtime.Stats`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json', ...controlHeaders(h.home) },
  });
  const stats = (await res.json()) as { functions: { name: string; invocations: number }[] };
  return stats.functions.find((f) => f.name === 'counter')?.invocations ?? 0;
};

if (natsAvailable()) {
  hosts.before(async () => {
    nats = await startNatsServer();
    const [a, b] = [await host(), await host()];
    await ok(['deploy', 'examples/counter', '--runtime', a.gateway], a.env);
    await ok(['deploy', 'examples/counter', '--runtime', b.gateway], b.env);
  });

  hosts.after(async () => {
    for (const s of serves) {
      s.proc.child.kill('SIGTERM');
      await s.proc.exited(10_000).catch(() => s.proc.kill());
    }
    await nats?.cleanup();
    for (const h of homes) h.cleanup();
  });

  hosts('100 concurrent one-shot invocations spread over both hosts end at exactly 100, each value once', async () => {
    const [a, b] = serves as [(typeof serves)[number], (typeof serves)[number]];
    const before = await Promise.all([invocations(a), invocations(b)]);
    const replies = await withTimeout(
      Promise.all(Array.from({ length: 100 }, (_, i) => increment((i % 2 ? a : b).gateway, 'count'))),
      180_000,
      '100 invocations',
    );
    const values = replies.map((r) => r.value).sort((x, y) => x - y);
    const conflicts = replies.reduce((n, r) => n + r.conflicts, 0);
    assert.equal(
      values,
      Array.from({ length: 100 }, (_, i) => i + 1),
      `values 1..100 (${conflicts} conflicts retried)`,
    );
    const ran = (await Promise.all([invocations(a), invocations(b)])).map((n, i) => n - before[i]!);
    assert.is(ran[0]! + ran[1]!, 100, `100 invocations in all (${ran.join(' + ')})`);
    assert.ok(ran[0]! > 0 && ran[1]! > 0, `both hosts ran some: ${ran.join(' + ')}`);
    // micro-fn store reads the same bucket, from either host's settings.
    const read = await ok(['store', 'get', 'counter', 'count', '--json'], b.env);
    assert.is((lastJson(read.stdout) as { value: number }).value, 100, 'the store holds 100');
  });

  hosts('micro-fn store set on one host is what the function on the other reads and increments', async () => {
    const [a, b] = serves as [(typeof serves)[number], (typeof serves)[number]];
    await ok(['store', 'set', 'counter', 'from-cli', '41'], a.env);
    assert.equal(await increment(b.gateway, 'from-cli'), { value: 42, conflicts: 0 });
    assert.is((await ok(['store', 'get', 'counter', 'from-cli'], a.env)).stdout, '42\n');
  });

  // Last: it kills a host.
  hosts(
    'a host killed amid 60 increments: each answered one counted once, the count never past what was sent',
    async () => {
      const [a, b] = serves as [(typeof serves)[number], (typeof serves)[number]];
      let answered = 0;
      const attempt = (gateway: string) =>
        increment(gateway, 'killed').then(
          (r) => (answered++, r.value),
          () => undefined, // the killed host's calls: ran or not, unanswered
        );
      const pending = Array.from({ length: 60 }, (_, i) => attempt((i % 2 ? a : b).gateway));
      await eventually(() => answered >= 10, 60_000, '10 answers before the kill', 20);
      a.proc.kill(); // SIGKILL: its in-flight invocations die with it or finish unanswered
      const values = (await withTimeout(Promise.all(pending), 180_000, '60 increments')).filter(
        (v): v is number => v !== undefined,
      );
      assert.is(new Set(values).size, values.length, `each answered value given once (${values.length} answered)`);
      const final = (await increment(b.gateway, 'killed')).value - 1; // this one counted after all the others
      assert.ok(
        final >= values.length && final <= 60,
        `the count ${final}: at least the ${values.length} answered, at most 60`,
      );
      assert.ok(
        values.every((v) => v <= final),
        'no answered value past the count',
      );
    },
  );
}

hosts.run();
