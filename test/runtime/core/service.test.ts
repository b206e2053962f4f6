import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createService, readConfig, ConfigError } from '../../../runtime/index.js';
import { createMemoryRegistry, createMemoryTransport } from '../../../runtime/plugins/memory/index.js';
import { sleep } from '../../helpers.js';

// ---
const service = suite('Service');

service('runs the lifecycle hooks in order around start and stop', async () => {
  const trace: string[] = [];
  const registry = createMemoryRegistry();
  const s = createService(
    {
      name: 'hooks',
      handlers: { H: { Ping: () => 'pong' } },
      beforeStart: () => void trace.push('beforeStart'),
      afterStart: [() => void trace.push('afterStart 1'), async () => void trace.push('afterStart 2')],
      beforeStop: () => void trace.push('beforeStop'),
      afterStop: () => void trace.push('afterStop'),
    },
    { registry, transport: createMemoryTransport() },
  );
  await s.start();
  trace.push(`registered ${(await registry.getService('hooks')).length}`);
  await s.stop();
  trace.push(`registered ${(await registry.getService('hooks')).length}`);
  assert.equal(trace, [
    'beforeStart',
    'afterStart 1',
    'afterStart 2',
    'registered 1',
    'beforeStop',
    'afterStop',
    'registered 0',
  ]);
  await registry.close?.();
});

service('registers its node and endpoints, and re-registers within the TTL', async () => {
  const registry = createMemoryRegistry();
  const s = createService(
    { name: 'ttl', version: '1.2.0', handlers: { A: { B: () => 1 } } },
    { registry, transport: createMemoryTransport(), ttl: 0.15, interval: 0.05 },
  );
  await s.start();
  const [record] = await registry.getService('ttl');
  assert.is(record!.version, '1.2.0');
  assert.equal(record!.endpoints, [{ name: 'A.B', metadata: {} }]);
  assert.equal(
    record!.nodes.map((n) => n.address),
    [s.address],
  );
  await sleep(400); // well past the TTL: only re-registration keeps it
  assert.is((await registry.getService('ttl')).length, 1);
  await s.stop();
  assert.equal(await registry.getService('ttl'), []);
  await registry.close?.();
});

service('undoes a start that fails: nothing stays registered', async () => {
  const registry = createMemoryRegistry();
  // A broker that refuses subscriptions, as the local broker does while no micro-fn serve runs.
  const broker = { publish: async () => {}, subscribe: () => Promise.reject(new Error('no broker here')) };
  const s = createService(
    { name: 'half', subscribers: { t: () => {} }, handlers: { H: { Ping: () => 1 } } },
    { registry, broker, transport: createMemoryTransport() },
  );
  try {
    await s.start();
    assert.unreachable('start should fail');
  } catch (err) {
    assert.is((err as Error).message, 'no broker here');
  }
  assert.equal(await registry.getService('half'), []);
  await registry.close?.();
});

service('reads TTL and interval from MICRO_REGISTER_TTL and MICRO_REGISTER_INTERVAL', () => {
  assert.equal(readConfig({}).registerTtl, 60);
  assert.equal(readConfig({}).registerInterval, 30);
  assert.equal(readConfig({ MICRO_REGISTER_TTL: '10', MICRO_REGISTER_INTERVAL: '5s' }).registerInterval, 5);
  assert.throws(
    () => readConfig({ MICRO_REGISTER_TTL: 'ten' }),
    (e: Error) => e instanceof ConfigError && /MICRO_REGISTER_TTL must be a whole number of seconds/.test(e.message),
  );
  assert.throws(() => readConfig({ MICRO_REGISTER_TTL: '10', MICRO_REGISTER_INTERVAL: '20' }), /must be shorter/);
});

service('rejects a definition without a usable name', () => {
  assert.throws(() => createService({ name: '' }), /needs a name/);
  assert.throws(() => createService({ name: 'has space' }), /needs a name/);
});

service.run();
