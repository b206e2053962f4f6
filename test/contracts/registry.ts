/** The Registry contract: every registry plugin (memory, file, NATS) runs this suite with its own factory. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Registry, RegistryEvent, ServiceRecord } from '../../runtime/core/registry.js';
import { eventually, sleep, withTimeout } from '../helpers.js';

export interface RegistryFixture {
  registry: Registry;
  /** Closes the registry and whatever the factory opened for it (servers, directories). */
  cleanup(): Promise<void>;
}

interface Context {
  fixture?: RegistryFixture;
  /** Aborted after each test: ends every watch the test opened. */
  controller: AbortController;
}

/** A service version with the given node ids; each node's address is derived from its id. */
export function serviceRecord(
  name: string,
  version: string,
  ids: string[],
  metadata: Record<string, string> = {},
): ServiceRecord {
  return {
    name,
    version,
    metadata: { owner: 'contract' },
    endpoints: [{ name: 'Greeter.Hello', metadata: { stream: 'false' } }],
    nodes: ids.map((id) => ({ id, address: `http://127.0.0.1/${id}`, metadata: { ...metadata } })),
  };
}

const ids = (services: ServiceRecord[]) => services.flatMap((s) => s.nodes.map((n) => n.id)).sort();
const versions = (services: ServiceRecord[]) => services.map((s) => s.version).sort();

/**
 * Next watch event, bounded. Holds the process open meanwhile: registries unref their expiry timers and
 * `withTimeout` unrefs its own, so a wait for an expiry event would otherwise let Node exit mid-suite.
 */
async function next(watch: AsyncIterator<RegistryEvent>, what: string): Promise<RegistryEvent> {
  const keepAlive = setInterval(() => {}, 1000);
  try {
    const result = await withTimeout(watch.next(), 3000, what);
    assert.not.ok(result.done, `${what}: the watch ended`);
    return result.value;
  } finally {
    clearInterval(keepAlive);
  }
}

export function registryContract(name: string, create: () => Promise<RegistryFixture>): void {
  const test = suite<Context>(name, { controller: new AbortController() });
  const registryOf = (ctx: Context) => ctx.fixture!.registry;
  const watch = (ctx: Context, service?: string) =>
    registryOf(ctx).watch({ service, signal: ctx.controller.signal })[Symbol.asyncIterator]();

  test.before.each(async (ctx) => {
    ctx.controller = new AbortController();
    ctx.fixture = await withTimeout(create(), 10_000, 'creating the registry');
  });
  test.after.each(async (ctx) => {
    ctx.controller.abort();
    const fixture = ctx.fixture;
    ctx.fixture = undefined; // after.each runs again when it throws: never clean up twice
    await fixture?.cleanup();
  });

  test('registers a service and reads it back with getService and listServices', async (ctx) => {
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a']), { ttl: 0 });
    const [found, ...rest] = await registryOf(ctx).getService('greeter');
    assert.equal(rest.length, 0);
    assert.equal(found, serviceRecord('greeter', '1.0.0', ['a']));
    const all = await registryOf(ctx).listServices();
    assert.equal(
      all.map((s) => `${s.name}@${s.version}`),
      ['greeter@1.0.0'],
    );
  });

  test('returns an empty array for an unknown service', async (ctx) => {
    assert.equal(await registryOf(ctx).getService('nobody'), []);
    assert.equal(await registryOf(ctx).listServices(), []);
  });

  test('merges the nodes that instances of the same version register', async (ctx) => {
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a']));
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['b']));
    const services = await registryOf(ctx).getService('greeter');
    assert.equal(services.length, 1);
    assert.equal(ids(services), ['a', 'b']);
  });

  test('keeps versions apart and returns every live version', async (ctx) => {
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a']));
    await registryOf(ctx).register(serviceRecord('greeter', '2.0.0', ['b']));
    await registryOf(ctx).register(serviceRecord('other', '1.0.0', ['c']));
    const services = await registryOf(ctx).getService('greeter');
    assert.equal(versions(services), ['1.0.0', '2.0.0']);
    assert.equal(
      services.find((s) => s.version === '2.0.0')?.nodes.map((n) => n.id),
      ['b'],
    );
    assert.equal((await registryOf(ctx).listServices()).length, 3);
  });

  test('registering a node again replaces it instead of adding a copy', async (ctx) => {
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a'], { zone: 'x' }));
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a'], { zone: 'y' }));
    const [service] = await registryOf(ctx).getService('greeter');
    assert.equal(service?.nodes, [{ id: 'a', address: 'http://127.0.0.1/a', metadata: { zone: 'y' } }]);
  });

  test('deregister removes only the given nodes and the version goes with its last node', async (ctx) => {
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a', 'b']));
    await registryOf(ctx).register(serviceRecord('greeter', '2.0.0', ['c']));
    await registryOf(ctx).deregister(serviceRecord('greeter', '1.0.0', ['a']));
    assert.equal(ids(await registryOf(ctx).getService('greeter')), ['b', 'c']);
    await registryOf(ctx).deregister(serviceRecord('greeter', '1.0.0', ['b']));
    assert.equal(versions(await registryOf(ctx).getService('greeter')), ['2.0.0']);
    await registryOf(ctx).deregister(serviceRecord('greeter', '2.0.0', ['c']));
    assert.equal(await registryOf(ctx).getService('greeter'), []);
    assert.equal(await registryOf(ctx).listServices(), []);
  });

  test('deregistering an unknown service or node changes nothing', async (ctx) => {
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a']));
    await registryOf(ctx).deregister(serviceRecord('nobody', '1.0.0', ['a']));
    await registryOf(ctx).deregister(serviceRecord('greeter', '9.9.9', ['a']));
    await registryOf(ctx).deregister(serviceRecord('greeter', '1.0.0', ['zzz']));
    assert.equal(ids(await registryOf(ctx).getService('greeter')), ['a']);
  });

  test('returns copies so that mutating a result or the registered record changes nothing', async (ctx) => {
    const registered = serviceRecord('greeter', '1.0.0', ['a']);
    await registryOf(ctx).register(registered);
    registered.nodes[0]!.address = 'http://changed';
    registered.metadata.owner = 'changed';
    const [first] = await registryOf(ctx).getService('greeter');
    first!.nodes.push({ id: 'intruder', address: 'http://x', metadata: {} });
    first!.nodes[0]!.metadata.zone = 'changed';
    first!.endpoints[0]!.name = 'changed';
    (await registryOf(ctx).listServices())[0]!.nodes.length = 0;
    assert.equal(await registryOf(ctx).getService('greeter'), [serviceRecord('greeter', '1.0.0', ['a'])]);
  });

  test('nodes expire when they are not registered again within the ttl', async (ctx) => {
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['short']), { ttl: 0.05 });
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['forever']), { ttl: 0 });
    await eventually(
      async () => ids(await registryOf(ctx).getService('greeter')).length === 1,
      3000,
      'the short node expiring',
    );
    assert.equal(ids(await registryOf(ctx).getService('greeter')), ['forever']);
    assert.equal(ids(await registryOf(ctx).listServices()), ['forever']);
  });

  test('registering again within the ttl keeps a node alive', async (ctx) => {
    const refreshed = serviceRecord('greeter', '1.0.0', ['a']);
    for (let i = 0; i < 8; i++) {
      await registryOf(ctx).register(refreshed, { ttl: 0.3 });
      await sleep(50);
      assert.equal(
        ids(await registryOf(ctx).getService('greeter')),
        ['a'],
        `still registered after ${(i + 1) * 50} ms`,
      );
    }
    await eventually(
      async () => (await registryOf(ctx).getService('greeter')).length === 0,
      3000,
      'the node expiring once no longer refreshed',
    );
  });

  test('watch reports create, update and delete in order', async (ctx) => {
    const events = watch(ctx);
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a']));
    const created = await next(events, 'create');
    assert.equal(
      [created.type, created.service.name, created.service.version, ids([created.service])],
      ['create', 'greeter', '1.0.0', ['a']],
    );
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['b']));
    const updated = await next(events, 'update');
    assert.equal([updated.type, ids([updated.service])], ['update', ['b']]);
    await registryOf(ctx).deregister(serviceRecord('greeter', '1.0.0', ['a']));
    const removed = await next(events, 'delete of a');
    assert.equal([removed.type, ids([removed.service])], ['delete', ['a']]);
    await registryOf(ctx).deregister(serviceRecord('greeter', '1.0.0', ['b']));
    const last = await next(events, 'delete of b');
    assert.equal([last.type, last.service.version, ids([last.service])], ['delete', '1.0.0', ['b']]);
  });

  test('watch reports an expired node as a delete event', async (ctx) => {
    const events = watch(ctx);
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a']), { ttl: 0.05 });
    assert.is((await next(events, 'create')).type, 'create');
    const expired = await next(events, 'delete on expiry');
    assert.equal([expired.type, ids([expired.service])], ['delete', ['a']]);
  });

  test('watch filtered by service sees only that service', async (ctx) => {
    const events = watch(ctx, 'greeter');
    await registryOf(ctx).register(serviceRecord('other', '1.0.0', ['x']));
    await registryOf(ctx).register(serviceRecord('greeter', '1.0.0', ['a']));
    const event = await next(events, 'greeter create');
    assert.equal([event.type, event.service.name], ['create', 'greeter']);
  });

  test('watch ends when its signal aborts', async (ctx) => {
    const controller = new AbortController();
    const events = registryOf(ctx).watch({ signal: controller.signal })[Symbol.asyncIterator]();
    const pending = events.next();
    controller.abort();
    assert.ok((await withTimeout(pending, 3000, 'the aborted watch ending')).done);
  });

  test('watch ends when the registry is closed', async (ctx) => {
    const events = watch(ctx);
    const pending = events.next();
    await registryOf(ctx).close?.();
    assert.ok((await withTimeout(pending, 3000, 'the watch ending on close')).done);
  });

  test.run();
}
