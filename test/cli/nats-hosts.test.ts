/** Two `micro-fn serve` processes sharing a registry on one real NATS: two hosts, one system. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../nats-server.js';

const hosts = suite('two micro-fn serve hosts on NATS');
let nats: NatsServer;
const homes: ReturnType<typeof tempHome>[] = [];
const serves: { proc: Running; gateway: string; env: Record<string, string> }[] = [];

// The registry on NATS; each serve hosts its own broker (the NATS brokers are not in yet).
const natsEnv = () => ({ MICRO_REGISTRY: 'nats', MICRO_REGISTRY_ADDRESS: nats.url });

async function host(): Promise<(typeof serves)[number]> {
  const home = tempHome();
  homes.push(home);
  const env = { ...natsEnv(), MICRO_FN_HOME: home.home };
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

  hosts('a function bundle reaches the NATS registry when its handler calls out', async () => {
    // The bundle imports the nats package from micro-fn's own dependencies, only when it connects.
    const [a] = serves;
    const r = await ok(['invoke', 'test/fixtures/caller', 'Caller.Out'], a!.env);
    assert.equal(JSON.parse(r.stdout), { published: true, called: 404 });
  });
}

hosts.run();
