/** Two `micro-fn serve` processes sharing a registry on one real NATS: two hosts, one system. */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually } from '../helpers.js';
import { resolvePlugins } from '../../runtime/plugins/resolve.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../nats-server.js';

const hosts = suite('two micro-fn serve hosts on NATS');
let nats: NatsServer;
const homes: ReturnType<typeof tempHome>[] = [];
const serves: { proc: Running; gateway: string; env: Record<string, string> }[] = [];

// Registry and broker on NATS (JetStream): what `--registry nats --broker jetstream` sets.
const natsEnv = () => ({ MICRO_REGISTRY: 'nats', MICRO_REGISTRY_ADDRESS: nats.url, MICRO_BROKER: 'jetstream' });

async function host(): Promise<(typeof serves)[number]> {
  const home = tempHome();
  homes.push(home);
  // MICRO_TEST_HOST names the host to its functions (serve passes MICRO_* on): as root they run as another user,
  // and see a MICRO_FN_HOME of their own.
  const env = { ...natsEnv(), MICRO_FN_HOME: home.home, MICRO_TEST_HOST: home.home };
  // A delivery whose host died comes back after the ack wait: short here.
  const proc = start(['serve', '--address', '127.0.0.1:0', '--ack-wait', '2s', '--quiet'], env);
  const [, gateway] = await proc.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const h = { proc, gateway: gateway!, env };
  serves.push(h);
  return h;
}

const ok = async (args: string[], env: Record<string, string>) => {
  const r = await cli(args, env, { timeout: 30000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

if (natsAvailable()) {
  hosts.before(async () => {
    nats = await startNatsServer();
  });

  hosts.after(async () => {
    for (const s of serves) {
      s.proc.child.kill('SIGTERM');
      await s.proc.exited(10000).catch(() => s.proc.kill());
    }
    await nats.cleanup();
    for (const h of homes) h.cleanup();
  });

  hosts('a function deployed on one host is callable through the other', async () => {
    const [a, b] = [await host(), await host()];
    await ok(['deploy', 'examples/helloworld', '--runtime', a.gateway], a.env);
    const r = await ok(['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}'], b.env);
    assert.is(r.stdout, '{"message":"Hello Ada"}\n');
    const [record] = JSON.parse((await ok(['describe', 'helloworld', '--json'], b.env)).stdout) as {
      nodes: { address: string }[];
    }[];
    assert.equal(
      record!.nodes.map((n) => n.address),
      [a.gateway],
    );
  });

  hosts('a function bundle reaches the NATS registry when its handler calls out', async () => {
    // The bundle imports the nats package from micro-fn's own dependencies, only when it connects.
    const [a] = serves;
    const r = await ok(['invoke', 'test/fixtures/caller', 'Caller.Out'], a!.env);
    assert.equal(JSON.parse(r.stdout), { published: true, called: 404 });
  });

  hosts(
    'micro-fn run on NATS core: each one-shot instance takes exactly one message (max 1 on the server)',
    async () => {
      const env = {
        MICRO_FN_HOME: homes[0]!.home,
        MICRO_REGISTRY: 'nats',
        MICRO_REGISTRY_ADDRESS: nats.url,
        MICRO_BROKER: 'nats',
      };
      const runs = [start(['run', 'examples/events'], env), start(['run', 'examples/events'], env)];
      try {
        await Promise.all(runs.map((r) => r.waitFor(/listening on/)));
        await ok(['publish', 'user.created', '{"id":1}'], env);
        await ok(['publish', 'user.created', '{"id":2}'], env);
        assert.equal(await Promise.all(runs.map((r) => r.exited(15_000))), [0, 0]);
        const handled = runs.map((r) => /user (\d) created/.exec(r.stdout())?.[1]).sort(); // logger.info: stdout
        assert.equal(handled, ['1', '2'], 'one message each');
      } finally {
        for (const r of runs) r.kill();
      }
    },
  );

  hosts('events are spread across both hosts, each message handled once', async () => {
    const [a, b] = serves;
    await ok(['deploy', 'test/fixtures/worker', '--runtime', a!.gateway], a!.env);
    await ok(['deploy', 'test/fixtures/worker', '--runtime', b!.gateway], b!.env);
    const dir = mkdtempSync(join(tmpdir(), 'micro-fn-spread-'));
    chmodSync(dir, 0o777); // functions write here, as nobody when serve runs as root
    try {
      // Published as `micro-fn publish` does, through the broker the hosts' settings name, on one connection.
      const plugins = await resolvePlugins(a!.env);
      try {
        for (let i = 0; i < 24; i++)
          await plugins.broker.publish('work.spread', { body: new TextEncoder().encode(JSON.stringify({ dir, i })) });
      } finally {
        await plugins.close();
      }
      const lines = () =>
        existsSync(join(dir, 'handled')) ? readFileSync(join(dir, 'handled'), 'utf8').trim().split('\n') : [];
      await eventually(() => lines().length >= 24, 30_000, '24 messages handled');
      const perHost = homes.slice(0, 2).map((h) => lines().filter((l) => l === h.home).length);
      assert.is(lines().length, 24, 'each message once');
      assert.ok(perHost[0]! > 0 && perHost[1]! > 0, `both hosts handled messages: ${perHost.join(' + ')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  hosts('a host killed in the middle of a message: the other host handles it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'micro-fn-failover-'));
    chmodSync(dir, 0o777);
    try {
      await ok(['publish', 'work.hang', JSON.stringify({ dir })], serves[0]!.env);
      await eventually(() => existsSync(join(dir, 'attempt-1')), 15_000, 'the first attempt');
      const first = readFileSync(join(dir, 'attempt-1.home'), 'utf8');
      const victim = serves.find((s) => s.env.MICRO_FN_HOME === first)!;
      victim.proc.kill(); // SIGKILL: no goodbye to NATS, the delivery is left unsettled
      await eventually(() => existsSync(join(dir, 'attempt-2.home')), 15_000, 'the redelivery');
      const second = readFileSync(join(dir, 'attempt-2.home'), 'utf8');
      assert.ok(
        second !== first && homes.some((h) => h.home === second),
        `handled again by the other host (${first} then ${second})`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

hosts.run();
