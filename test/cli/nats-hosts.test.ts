/** Two `micro-fn serve` processes on one real NATS: two hosts, one system. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually } from '../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../nats-server.js';

const hosts = suite('two micro-fn serve hosts on NATS');
let nats: NatsServer;
const homes: ReturnType<typeof tempHome>[] = [];
const serves: { proc: Running; gateway: string; env: Record<string, string> }[] = [];

const natsEnv = () => ({ MICRO_REGISTRY: 'nats', MICRO_REGISTRY_ADDRESS: nats.url, MICRO_BROKER: 'jetstream', MICRO_BROKER_ADDRESS: nats.url });

async function host(): Promise<(typeof serves)[number]> {
  const home = tempHome();
  homes.push(home);
  const env = { ...natsEnv(), MICRO_FN_HOME: home.home, MICRO_BROKER_ACK_WAIT: '2s' };
  const proc = start(['serve', '--address', '127.0.0.1:0'], env);
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
    const [record] = JSON.parse((await ok(['describe', 'helloworld', '--json'], b.env)).stdout) as { nodes: { address: string }[] }[];
    assert.equal(record!.nodes.map((n) => n.address), [a.gateway]);
  });

  hosts('spreads events across both hosts, and a message whose host dies is handled by the other', async () => {
    const [a, b] = serves;
    for (const h of [a!, b!]) await ok(['deploy', 'examples/events', '--runtime', h.gateway], h.env);
    for (let i = 0; i < 12; i++) await ok(['publish', 'user.created', JSON.stringify({ id: i })], a!.env);
    const handled = (h: (typeof serves)[number]) => {
      const file = join(h.env.MICRO_FN_HOME!, 'logs', 'events.log');
      return existsSync(file) ? (readFileSync(file, 'utf8').match(/user \d+ created/g) ?? []).length : 0;
    };
    await eventually(() => handled(a!) + handled(b!) === 12, 20000, 'all 12 events handled');
    assert.ok(handled(a!) > 0 && handled(b!) > 0, `spread: ${handled(a!)} and ${handled(b!)}`);

    const dir = mkdtempSync(join(tmpdir(), 'micro-fn-hosts-'));
    try {
      for (const h of [a!, b!]) await ok(['deploy', 'test/fixtures/worker', '--runtime', h.gateway], h.env);
      await ok(['publish', 'work.hang', JSON.stringify({ dir })], a!.env);
      await eventually(() => existsSync(join(dir, 'attempt-1')), 15000, 'the first attempt');
      // Which host took it? Its function process is a child of that serve: kill the whole host.
      const pid = Number(readFileSync(join(dir, 'attempt-1'), 'utf8'));
      const owner = serves.find((s) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[3] === String(s.proc.child.pid));
      assert.ok(owner, 'the function process belongs to one of the hosts');
      owner!.proc.kill();
      process.kill(pid, 'SIGKILL');
      await eventually(() => existsSync(join(dir, 'attempt-2')), 30000, 'the other host handles it');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

hosts.run();
