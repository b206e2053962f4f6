/**
 * The NATS plugins of one set share one connection per server (connections.ts), counted by shares; the server's own
 * monitoring endpoint (/connz) says how many connections it sees.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Delivery } from '../../../../runtime/core/broker.js';
import { NatsConnections } from '../../../../runtime/plugins/nats/connections.js';
import { createJetStreamBroker } from '../../../../runtime/plugins/nats/jetstream.js';
import { createNatsRegistry } from '../../../../runtime/plugins/nats/registry.js';
import { createNatsStore } from '../../../../runtime/plugins/nats/store.js';
import { resolvePlugins } from '../../../../runtime/plugins/resolve.js';
import { collector, decode, encode } from '../../../contracts/broker.js';
import { natsAvailable, serverConnections, startNatsServer, type NatsServer } from '../../../nats-server.js';
import { eventually, rejects, withTimeout } from '../../../helpers.js';

const greeter = (id: string) => ({
  name: 'greeter',
  version: '1.0.0',
  metadata: {},
  endpoints: [],
  nodes: [{ id, address: 'http://127.0.0.1:1', metadata: {} }],
});

/** Waits until the server sees `count` client connections (a close reaches it a moment later). */
const seen = (server: NatsServer, count: number, what: string) =>
  eventually(async () => (await serverConnections(server)).length === count, 5000, what, 20);

type Context = { server: NatsServer; close: (() => Promise<unknown>)[] };

/** A registry and a store on one pool, closed after the test. */
function pair(ctx: Context) {
  const connections = new NatsConnections();
  const registry = createNatsRegistry({ address: ctx.server.url, connections });
  const store = createNatsStore({ address: ctx.server.url, connections });
  ctx.close.push(
    () => registry.close(),
    () => store.close(),
  );
  return { connections, registry, store };
}

if (natsAvailable()) {
  const test = suite<Context>('NatsConnections', {
    server: undefined as never,
    close: [],
  });
  test.before.each(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ monitor: true }), 10_000, 'nats-server');
    ctx.close = [];
  });
  test.after.each(async (ctx) => {
    await Promise.allSettled(ctx.close.map((close) => withTimeout(close(), 10_000, 'closing a plugin')));
    await ctx.server?.cleanup();
  });

  test('a registry and a store given one pool use one connection: the server sees 1, not 2', async (ctx) => {
    const { connections, registry, store } = pair(ctx);
    await withTimeout(
      Promise.all([registry.register(greeter('a')), store.set('ns', 'k', '"v"', {})]),
      10_000,
      'first use of both',
    );
    assert.is((await registry.getService('greeter'))[0]?.nodes.length, 1);
    assert.is((await store.get('ns', 'k'))?.value, '"v"');
    assert.equal(await serverConnections(ctx.server), ['micro-fn registry']);
    assert.is(connections.size, 1);
  });

  test('without a pool each keeps a connection of its own (the server sees 2)', async (ctx) => {
    const registry = createNatsRegistry({ address: ctx.server.url });
    const store = createNatsStore({ address: ctx.server.url });
    ctx.close.push(
      () => registry.close(),
      () => store.close(),
    );
    await withTimeout(Promise.all([registry.listServices(), store.get('ns', 'k')]), 10_000, 'first use of both');
    assert.is((await serverConnections(ctx.server)).length, 2);
  });

  test('closing one keeps the connection for the other, which goes on working; closing both closes it', async (ctx) => {
    const { connections, registry, store } = pair(ctx);
    await withTimeout(registry.register(greeter('a')), 10_000, 'register');
    await withTimeout(store.set('ns', 'k', '"1"', {}), 10_000, 'set');
    await withTimeout(registry.close(), 10_000, 'closing the registry');
    await rejects(() => registry.listServices(), 'a closed registry refuses');
    await withTimeout(store.set('ns', 'k', '"2"', {}), 10_000, 'a set after the registry closed');
    assert.is((await store.get('ns', 'k'))?.value, '"2"');
    assert.is((await serverConnections(ctx.server)).length, 1, 'the store still has it');
    await withTimeout(store.close(), 10_000, 'closing the store');
    await seen(ctx.server, 0, 'no connection once both closed');
    assert.is(connections.size, 0);
  });

  test('a server down at first use: both fail (1 failure each), then both work on one connection once it is up', async (ctx) => {
    const { connections, registry, store } = pair(ctx);
    await withTimeout(ctx.server.stop(), 15_000, 'stopping nats-server');
    await rejects(() => withTimeout(registry.listServices(), 15_000, 'a read while down'), 'the registry fails');
    await rejects(() => withTimeout(store.get('ns', 'k'), 15_000, 'a read while down'), 'the store fails');
    assert.is(connections.size, 0, 'a failed open is not kept');
    await withTimeout(ctx.server.restart(), 15_000, 'restarting nats-server');
    await withTimeout(registry.register(greeter('a')), 10_000, 'register once up');
    await withTimeout(store.set('ns', 'k', '"v"', {}), 10_000, 'set once up');
    assert.is((await registry.getService('greeter'))[0]?.nodes[0]?.id, 'a');
    assert.is((await store.get('ns', 'k'))?.value, '"v"');
    assert.is((await serverConnections(ctx.server)).length, 1);
  });

  test('two JetStream brokers on one connection each resume after a server restart (a status watcher each)', async (ctx) => {
    const connections = new NatsConnections();
    const fast = { ackWait: 2000, pullExpires: 1000 };
    const brokers = [0, 1].map(() => createJetStreamBroker({ address: ctx.server.url, connections, ...fast }));
    ctx.close.push(...brokers.map((b) => () => b.close()));
    const got = brokers.map(() => collector());
    await withTimeout(
      Promise.all(brokers.map((b, i) => b.subscribe(`shared${i}.orders`, got[i]!.handler, { queue: `q${i}` }))),
      10_000,
      'subscribing',
    );
    assert.is((await serverConnections(ctx.server)).length, 1);
    await withTimeout(ctx.server.restart(), 15_000, 'restarting nats-server'); // file storage: streams stay
    for (const [i, b] of brokers.entries())
      await withTimeout(b.publish(`shared${i}.orders`, { body: encode(`m${i}`) }), 15_000, `publish ${i}`);
    const bodies = (i: number) => got[i]!.deliveries.map((d: Delivery) => decode(d.message.body));
    await eventually(() => bodies(0).length === 1 && bodies(1).length === 1, 15_000, 'both deliveries', 50);
    assert.equal([bodies(0), bodies(1)], [['m0'], ['m1']]);
    await withTimeout(brokers[0]!.close(), 10_000, 'closing one broker');
    await withTimeout(brokers[1]!.publish('shared1.orders', { body: encode('after') }), 10_000, 'publish after');
    await eventually(() => bodies(1).length === 2, 10_000, 'the other broker still delivers', 50);
    assert.is(connections.size, 1);
  });

  test.run();

  // ---

  const set = suite<{ server: NatsServer }>('NATS plugins of one plugin set', { server: undefined as never });
  set.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ monitor: true }), 10_000, 'nats-server');
  });
  set.after(async (ctx) => {
    await ctx.server?.cleanup();
  });

  set('registry, JetStream broker, store, sync and config share one connection; close() ends it', async (ctx) => {
    const address = ctx.server.url;
    const env = { MICRO_REGISTRY: 'nats', MICRO_BROKER: 'jetstream', MICRO_STORE: 'nats', MICRO_SYNC: 'nats' };
    const plugins = await resolvePlugins({
      ...env,
      MICRO_CONFIG: 'nats',
      MICRO_REGISTRY_ADDRESS: address,
      MICRO_BROKER_ADDRESS: address,
    });
    try {
      const got = collector();
      await withTimeout(plugins.broker.subscribe('set.orders', got.handler, { queue: 'set' }), 10_000, 'subscribe');
      await withTimeout(plugins.registry.register(greeter('a')), 10_000, 'register');
      const store = await plugins.store!();
      const sync = await plugins.sync!();
      const config = await plugins.config!();
      await withTimeout(
        Promise.all([store.set('ns', 'k', '"v"', {}), sync.get('ns', 'k'), config.get('fn', 'greeting')]),
        10_000,
        'store, sync and config',
      );
      await withTimeout(plugins.broker.publish('set.orders', { body: encode('one') }), 10_000, 'publish');
      await eventually(() => got.deliveries.length === 1, 10_000, 'the delivery');
      assert.is((await serverConnections(ctx.server)).length, 1, 'one connection for 5 plugins');
      // Another set (another invocation, another function) keeps its own: never one request's I/O in another's.
      const other = await resolvePlugins({ ...env, MICRO_REGISTRY_ADDRESS: address, MICRO_BROKER_ADDRESS: address });
      await withTimeout(other.registry.listServices(), 10_000, 'the other set');
      assert.is((await serverConnections(ctx.server)).length, 2, 'a second set, a second connection');
      await withTimeout(other.close(), 10_000, 'closing the other set');
    } finally {
      await withTimeout(plugins.close(), 10_000, 'closing the plugins');
    }
    await seen(ctx.server, 0, 'no connection left after close()');
  });

  set.run();
}
