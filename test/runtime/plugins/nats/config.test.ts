/**
 * The NATS config source (MICRO_CONFIG=nats) passes the config contract on a real nats-server with JetStream: the
 * reader and the writer each a connection of its own, the keys in the bucket micro_fn_config; and `micro-fn config`
 * writes there what a function's plugin then reads.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { natsConfig } from '../../../../runtime/plugins/nats/plugin.js';
import { readConfig } from '../../../../runtime/core/config.js';
import type { ConfigBackend } from '../../../../runtime/core/function-config.js';
import { createConfig } from '../../../../runtime/core/function-config.js';
import { configContract } from '../../../contracts/config.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';
import { cli, tempHome } from '../../../cli/helpers.js';

/** The plugin as a host opens it from its environment. */
const open = (env: Record<string, string>) =>
  natsConfig.create({ env, config: readConfig(env), platform: 'node', broker: {} });

if (natsAvailable()) {
  configContract('config contract: nats (JetStream KV, two connections)', async () => {
    const server = await startNatsServer();
    const env = { MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: server.url };
    const hosts = [await open(env), await open(env)];
    return {
      backend: (host) => hosts[host]!,
      async cleanup() {
        await Promise.allSettled(hosts.map((h) => h.close?.()));
        await server.cleanup();
      },
    };
  });

  const viaCli = suite<{ server: NatsServer; backend: ConfigBackend; home: ReturnType<typeof tempHome> }>(
    'micro-fn config --config nats',
    { server: undefined as never, backend: undefined as never, home: undefined as never },
  );
  viaCli.before(async (ctx) => {
    ctx.server = await startNatsServer();
    ctx.backend = await open({ MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: ctx.server.url });
    ctx.home = tempHome();
  });
  viaCli.after(async (ctx) => {
    await ctx.backend?.close?.();
    await ctx.server?.cleanup();
    ctx.home?.cleanup();
  });

  viaCli(
    'writes the bucket a function on that server reads (2 keys, one as JSON; deleted and set again), without micro-fn serve',
    async (ctx) => {
      const env = { MICRO_FN_HOME: ctx.home.home, MICRO_CONFIG_ADDRESS: ctx.server.url };
      for (const args of [
        ['config', 'set', 'fn', 'greeting', 'Hi', '--config', 'nats'],
        ['config', 'set', 'fn', 'limits', '{"burst":10}', '--type', 'json', '--config', 'nats'],
      ]) {
        const r = await cli(args, env, { timeout: 60_000 });
        assert.is(r.code, 0, r.stderr);
      }
      const config = createConfig({ service: 'fn', env: {}, open: async () => ctx.backend });
      assert.is(await config.string('greeting'), 'Hi');
      assert.equal(await config.json('limits'), { burst: 10 });
      const listed = await cli(['config', 'list', 'fn', '--config', 'nats'], env, { timeout: 60_000 });
      assert.is(listed.stdout, 'greeting\tHi\nlimits\t{"burst":10}\n');
    },
  );

  viaCli.run();
}
