/**
 * Deno and the local target as one system, on one real NATS registry: a function under `deno serve` calls a
 * function `micro-fn serve` runs, and `micro-fn call` reaches the Deno function, both through the registry. The
 * Deno side reaches NATS over WebSocket (nats-server's websocket listener), the local side over TCP.
 * Needs `npm run build` first.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from '../../cli/helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../nats-server.js';
import { post, startDeno, tempDir, type DenoProcess } from './deno.js';

interface Node {
  address: string;
}

interface Context {
  nats?: NatsServer;
  serve?: Running;
  gateway: string;
  deno?: DenoProcess;
  cleanup: (() => void)[];
}

if (natsAvailable()) {
  const system = suite<Context>('Deno and micro-fn serve on one NATS registry', { gateway: '', cleanup: [] });
  let registry: string[] = [];
  let home = '';
  let dir = '';
  const run = (args: string[]) => cli([...args, ...registry], { MICRO_FN_HOME: home }, { timeout: 60_000 });

  system.before(async (ctx) => {
    const h = tempHome();
    const out = tempDir();
    ctx.cleanup.push(h.cleanup, out.remove);
    home = h.home;
    dir = out.dir;
    ctx.nats = await startNatsServer({ websocket: true });
    registry = ['--registry', 'nats', '--registry-address', ctx.nats.url];
    ctx.serve = start(['serve', ...registry, '--address', '127.0.0.1:0', '--quiet'], { MICRO_FN_HOME: home });
    ctx.gateway = (await ctx.serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000))[1]!;
  });

  system.after(async (ctx) => {
    await ctx.deno?.stop();
    if (ctx.serve) {
      ctx.serve.child.kill('SIGTERM');
      await ctx.serve.exited(10_000).catch(() => ctx.serve?.kill());
    }
    await ctx.nats?.cleanup();
    for (const cleanup of ctx.cleanup) cleanup();
  });

  /** `micro-fn deploy test/fixtures/deno-caller --target deno`, configured for the registry over WebSocket. */
  const deployCaller = (ctx: Context, ...how: string[]) => {
    const env = ['--env', 'MICRO_REGISTRY=nats', '--env', `MICRO_REGISTRY_ADDRESS=${ctx.nats!.websocket}`];
    const listen = ['--host', '127.0.0.1', '--port', '0'];
    return run(['deploy', 'test/fixtures/deno-caller', '--target', 'deno', '--outdir', dir, ...listen, ...env, ...how]);
  };

  system('a function under deno serve calls helloworld, run by micro-fn serve, through the registry', async (ctx) => {
    const local = await run(['deploy', 'examples/helloworld', '--target', 'local']);
    assert.is(local.code, 0, local.stderr);
    const [record] = JSON.parse((await run(['describe', 'helloworld', '--json'])).stdout) as { nodes: Node[] }[];
    assert.equal(
      record!.nodes.map((n) => n.address),
      [ctx.gateway],
      'helloworld runs on serve only',
    );
    const written = await deployCaller(ctx, '--dry-run');
    assert.is(written.code, 0, written.stderr);
    ctx.deno = await startDeno(['task', 'start'], { cwd: dir });
    const res = await post(ctx.deno.url, '/denocaller/Caller.Hello', '{"name":"Ada"}');
    assert.is(res.status, 200, await res.clone().text());
    assert.equal(await res.json(), { message: 'Hello Ada', via: 'deno' });
  });

  system('micro-fn call reaches the Deno function through the registry, and it the local one', async (ctx) => {
    const deployed = await deployCaller(ctx, '--url', ctx.deno!.url);
    assert.is(deployed.code, 0, deployed.stderr);
    const called = await run(['call', 'denocaller', 'Caller.Hello', '{"name":"Bo"}']);
    assert.is(called.code, 0, called.stderr);
    assert.equal(JSON.parse(called.stdout), { message: 'Hello Bo', via: 'deno' });
  });

  system.run();
}
