/** Which plugins a Worker's env asks for: NATS only over WebSocket, nothing that keeps state between invocations. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../runtime/core/config.js';
import { workerNatsConfig, workerPlugins } from '../../../adapters/cloudflare/plugins.js';

// ---
const config = suite('workerNatsConfig');

config('reads the NATS registry and broker, each falling back to the other address', () => {
  assert.equal(workerNatsConfig({}), {});
  assert.equal(workerNatsConfig({ MICRO_REGISTRY: 'nats', MICRO_BROKER: 'jetstream', MICRO_REGISTRY_ADDRESS: 'wss://nats.example.com' }), {
    registry: 'wss://nats.example.com',
    broker: { kind: 'jetstream', address: 'wss://nats.example.com' },
  });
  assert.equal(workerNatsConfig({ MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: 'ws://127.0.0.1:8080,ws://127.0.0.1:8081' }), {
    broker: { kind: 'nats', address: 'ws://127.0.0.1:8080,ws://127.0.0.1:8081' },
  });
});

config('refuses a NATS address that is not WebSocket, saying which one to set', () => {
  assert.throws(() => workerNatsConfig({ MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: 'nats://127.0.0.1:4222' }), (err: Error) => err instanceof ConfigError && /MICRO_BROKER_ADDRESS to ws:\/\/host:port or wss:\/\/host:port/.test(err.message));
  assert.throws(() => workerNatsConfig({ MICRO_REGISTRY: 'nats' }), (err: Error) => err instanceof ConfigError && /MICRO_REGISTRY_ADDRESS/.test(err.message));
});

config('refuses plugins that keep state in one place (local, memory)', () => {
  assert.throws(() => workerNatsConfig({ MICRO_REGISTRY: 'local' }), (err: Error) => err instanceof ConfigError && /MICRO_REGISTRY=local does not work in a Worker/.test(err.message));
  assert.throws(() => workerNatsConfig({ MICRO_BROKER: 'memory' }), (err: Error) => err instanceof ConfigError && /use nats or jetstream/.test(err.message));
});

config.run();

// ---
const plugins = suite('workerPlugins');

plugins('without NATS: only the HTTP transport, and nothing to close', async () => {
  const loaded = await workerPlugins({});
  assert.is(loaded.registry, undefined);
  assert.is(loaded.broker, undefined);
  assert.equal(loaded.transports.map((t) => t.schemes), [['http', 'https']]);
  await loaded.close();
});

plugins('with NATS: registry, broker and a transport for nats:// nodes, none connected until used', async () => {
  const loaded = await workerPlugins({ MICRO_REGISTRY: 'nats', MICRO_BROKER: 'nats', MICRO_REGISTRY_ADDRESS: 'ws://127.0.0.1:1' });
  assert.ok(loaded.registry);
  assert.ok(loaded.broker);
  assert.equal(loaded.transports.map((t) => t.schemes), [['http', 'https'], ['nats']]);
  await loaded.close();
});

plugins.run();
