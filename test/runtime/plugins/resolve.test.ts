/** Plugins as data: the resolver reads every plugin's descriptor, on each platform, and says what fits when a name does not. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../runtime/core/config.js';
import {
  choose,
  descriptors,
  listenTransport,
  pluginNames,
  resolvePlugins,
  selectPlugins,
} from '../../../runtime/plugins/resolve.js';
import { rejects } from '../../helpers.js';

const names = (env: Record<string, string>, platform: 'node' | 'web') =>
  selectPlugins(env, platform).map((d) => `${d.kind} ${d.name}`);

// ---
const catalog = suite('descriptors');

catalog('lists every plugin folder once per kind and name and platform, each with a summary', () => {
  const seen = new Set<string>();
  for (const d of descriptors()) {
    for (const platform of d.platforms) {
      const key = `${d.kind} ${d.name} ${platform}`;
      assert.not.ok(seen.has(key), `${key} twice`);
      seen.add(key);
    }
    assert.ok(d.summary.length > 10, `${d.kind} ${d.name} has a summary`);
  }
  for (const key of [
    'registry local node',
    'registry nats web',
    'broker jetstream node',
    'transport http web',
    'transport lambda node',
  ])
    assert.ok(seen.has(key), key);
});

catalog.run();

// ---
const select = suite('selectPlugins');

select('on Node, the embedded default: local registry, broker, store and sync, HTTP and Lambda transports', () => {
  assert.equal(names({}, 'node'), [
    'registry local',
    'broker local',
    'store local',
    'sync local',
    'config local',
    'transport http',
    'transport lambda',
  ]);
});

select('carries the store MICRO_STORE names, on the Web only when named', () => {
  assert.equal(names({ MICRO_STORE: 'memory' }, 'node'), [
    'registry local',
    'broker local',
    'store memory',
    'sync local',
    'config local',
    'transport http',
    'transport lambda',
  ]);
  assert.equal(names({ MICRO_STORE: 'memory' }, 'web'), ['store memory', 'transport http']);
  assert.throws(() => names({ MICRO_STORE: 'local' }, 'web'), /MICRO_STORE=local does not run on web/);
  assert.throws(
    () => names({ MICRO_STORE: 'redis' }, 'node'),
    /MICRO_STORE must be one of local, memory, nats; got "redis"/,
  );
  assert.throws(
    () => names({ MICRO_STORE: 'cloudflare-kv' }, 'node'),
    /MICRO_STORE=cloudflare-kv does not run on node/,
  );
  assert.equal(names({ MICRO_STORE: 'cloudflare-kv' }, 'web'), ['store cloudflare-kv', 'transport http']);
  // The NATS store: its own address, else the registry's; on the Web over WebSocket only.
  assert.ok(names({ MICRO_STORE: 'nats' }, 'node').includes('store nats'));
  assert.throws(() => names({ MICRO_STORE: 'nats' }, 'web'), /set MICRO_STORE_ADDRESS to ws:\/\/host:port/);
  assert.ok(names({ MICRO_STORE: 'nats', MICRO_STORE_ADDRESS: 'wss://n.example.com' }, 'web').includes('store nats'));
});

select('carries the sync MICRO_SYNC names, on the Web only when named', () => {
  assert.ok(names({ MICRO_SYNC: 'memory' }, 'node').includes('sync memory'));
  assert.not.ok(names({ MICRO_SYNC: 'memory' }, 'node').includes('sync local'), 'one sync plugin');
  assert.equal(names({ MICRO_SYNC: 'memory' }, 'web'), ['sync memory', 'transport http']);
  assert.throws(() => names({ MICRO_SYNC: 'local' }, 'web'), /MICRO_SYNC=local does not run on web/);
  assert.throws(
    () => names({ MICRO_SYNC: 'redis' }, 'node'),
    /MICRO_SYNC must be one of local, memory, nats; got "redis"/,
  );
});

select('carries the config source MICRO_CONFIG names, on the Web only when named', () => {
  assert.ok(names({ MICRO_CONFIG: 'memory' }, 'node').includes('config memory'));
  assert.not.ok(names({ MICRO_CONFIG: 'memory' }, 'node').includes('config local'), 'one config plugin');
  assert.equal(names({}, 'web'), ['transport http'], 'none by default on the Web: the environment and config.json');
  assert.throws(() => names({ MICRO_CONFIG: 'local' }, 'web'), /MICRO_CONFIG=local does not run on web/);
  assert.throws(
    () => names({ MICRO_CONFIG: 'redis' }, 'node'),
    /MICRO_CONFIG must be one of local, memory, nats; got "redis"/,
  );
  assert.throws(() => names({ MICRO_CONFIG: 'nats' }, 'web'), /set MICRO_CONFIG_ADDRESS to ws:\/\/host:port/);
  assert.ok(names({ MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: 'ws://n:8080' }, 'web').includes('config nats'));
});

select('carries the NATS transport only when the configuration uses NATS', () => {
  assert.equal(names({ MICRO_REGISTRY: 'nats', MICRO_BROKER: 'jetstream' }, 'node'), [
    'registry nats',
    'broker jetstream',
    'store local',
    'sync local',
    'config local',
    'transport http',
    'transport lambda',
    'transport nats',
  ]);
  assert.equal(names({ MICRO_TRANSPORT: 'nats' }, 'node'), [
    'registry local',
    'broker local',
    'store local',
    'sync local',
    'config local',
    'transport http',
    'transport lambda',
    'transport nats',
  ]);
});

select('on the Web: nothing by default but the fetch client; NATS over WebSocket when configured', () => {
  assert.equal(names({}, 'web'), ['transport http']);
  assert.equal(
    names(
      { MICRO_REGISTRY: 'nats', MICRO_BROKER: 'jetstream', MICRO_REGISTRY_ADDRESS: 'wss://nats.example.com' },
      'web',
    ),
    ['registry nats', 'broker jetstream', 'transport http', 'transport nats'],
  );
});

select('refuses on the Web a NATS address that is not WebSocket, naming the variable to set', () => {
  assert.throws(
    () => selectPlugins({ MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: 'nats://127.0.0.1:4222' }, 'web'),
    (err: Error) =>
      err instanceof ConfigError &&
      /set MICRO_BROKER_ADDRESS to ws:\/\/host:port or wss:\/\/host:port.*got "nats:\/\/127\.0\.0\.1:4222"/.test(
        err.message,
      ),
  );
  assert.throws(
    () => selectPlugins({ MICRO_REGISTRY: 'nats' }, 'web'),
    (err: Error) => err instanceof ConfigError && /MICRO_REGISTRY_ADDRESS/.test(err.message),
  );
  assert.equal(
    names({ MICRO_BROKER: 'nats', MICRO_REGISTRY_ADDRESS: 'ws://127.0.0.1:8080,ws://127.0.0.1:8081' }, 'web'),
    ['broker nats', 'transport http', 'transport nats'],
  );
});

select.run();

// ---
const chooseSuite = suite('choose');

chooseSuite('says where a plugin runs when it does not run here, and what does', () => {
  assert.throws(
    () => choose('registry', 'local', 'web'),
    (err: Error) =>
      err instanceof ConfigError &&
      err.message === 'MICRO_REGISTRY=local does not run on web (it runs on node); here: memory, nats',
  );
  assert.throws(
    () => choose('broker', 'redis', 'node'),
    (err: Error) =>
      err instanceof ConfigError &&
      err.message === 'MICRO_BROKER must be one of local, memory, jetstream, nats; got "redis"',
  );
});

chooseSuite('pluginNames marks the default of the platform', () => {
  assert.is(pluginNames('registry'), 'local (default), memory, nats');
  assert.is(pluginNames('broker', 'web'), 'memory, jetstream, nats');
});

chooseSuite.run();

// ---
const resolve = suite('resolvePlugins');

resolve(
  'opens nothing it does not need: the memory plugins and a transport per scheme, closed in one call',
  async () => {
    const plugins = await resolvePlugins({ MICRO_REGISTRY: 'memory', MICRO_BROKER: 'memory' });
    try {
      assert.equal(await plugins.registry.listServices(), []);
      assert.equal(
        plugins.transports.map((t) => t.schemes),
        [['http', 'https'], ['lambda']],
      );
      assert.is(listenTransport({}, plugins), plugins.transports[0]);
    } finally {
      await plugins.close();
    }
  },
);

resolve('on the Web without configuration: no registry, no broker, calls by address over fetch', async () => {
  const plugins = await resolvePlugins({}, { platform: 'web' });
  assert.is(plugins.registry, undefined);
  assert.is(plugins.broker, undefined);
  assert.equal(
    plugins.transports.map((t) => t.schemes),
    [['http', 'https']],
  );
  await plugins.close();
});

resolve('refuses MICRO_TRANSPORT naming a transport this host cannot listen with', async () => {
  const plugins = await resolvePlugins({ MICRO_REGISTRY: 'memory', MICRO_BROKER: 'memory' });
  try {
    assert.throws(
      () => listenTransport({ MICRO_TRANSPORT: 'carrier-pigeon' }, plugins),
      /MICRO_TRANSPORT must be one of http, lambda, nats; got "carrier-pigeon"/,
    );
  } finally {
    await plugins.close();
  }
  const err = (await rejects(() => resolvePlugins({ MICRO_REGISTRY: 'zookeeper' }))) as Error;
  assert.instance(err, ConfigError);
  assert.is(err.message, 'MICRO_REGISTRY must be one of local, memory, nats; got "zookeeper"');
});

resolve.run();
