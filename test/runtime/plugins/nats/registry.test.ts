import type { NatsConnection } from 'nats';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../../runtime/core/config.js';
import { isMicroError } from '../../../../runtime/core/errors.js';
import type { RegistryEvent, ServiceRecord } from '../../../../runtime/core/registry.js';
import { connectNats } from '../../../../runtime/plugins/nats/connection.js';
import {
  NatsRegistry,
  createNatsRegistry,
  type NatsRegistryOptions,
} from '../../../../runtime/plugins/nats/registry.js';
import { registryContract, serviceRecord } from '../../../contracts/registry.js';
import { eventually, rejects, sleep, withTimeout } from '../../../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';

const ids = (services: ServiceRecord[]) => services.flatMap((s) => s.nodes.map((n) => n.id)).sort();

/** One nats-server for the whole file (started by the first suite's `before`, stopped by the last `after`). */
let server: Promise<NatsServer> | undefined;
let admin: Promise<NatsConnection> | undefined;
const natsServer = () => (server ??= startNatsServer());
const adminConnection = async () =>
  (admin ??= connectNats({ address: (await natsServer()).url, name: 'registry test admin' }));
let buckets = 0;
const freshBucket = () => `test_${process.pid}_${++buckets}`;

/** Removes a test's bucket (its stream is `KV_<bucket>`); missing is fine. */
async function destroyBucket(bucket: string): Promise<void> {
  const jsm = await (await adminConnection()).jetstreamManager();
  await jsm.streams.delete(`KV_${bucket}`).catch(() => false);
}

async function stopEverything(): Promise<void> {
  const [connection, nats] = [admin, server];
  [admin, server] = [undefined, undefined];
  await (await connection?.catch(() => undefined))?.close();
  await (await nats?.catch(() => undefined))?.cleanup();
}

if (natsAvailable()) {
  interface Context {
    url: string;
    bucket: string;
    registries: NatsRegistry[];
    connections: NatsConnection[];
    controller: AbortController;
    open(options?: Partial<NatsRegistryOptions>): NatsRegistry;
  }

  const NatsRegistrySuite = suite<Context>('NatsRegistry', {
    url: '',
    bucket: '',
    registries: [],
    connections: [],
    controller: new AbortController(),
    open: () => undefined as never,
  });

  NatsRegistrySuite.before(async (ctx) => {
    ctx.url = (await withTimeout(natsServer(), 15_000, 'starting nats-server')).url;
  });
  NatsRegistrySuite.before.each((ctx) => {
    ctx.bucket = freshBucket();
    ctx.registries = [];
    ctx.connections = [];
    ctx.controller = new AbortController();
    ctx.open = (options = {}) => {
      const registry = createNatsRegistry({ address: ctx.url, bucket: ctx.bucket, ...options } as NatsRegistryOptions);
      ctx.registries.push(registry);
      return registry;
    };
  });
  NatsRegistrySuite.after.each(async (ctx) => {
    ctx.controller.abort();
    await withTimeout(Promise.all(ctx.registries.map((r) => r.close())), 10_000, 'closing the registries');
    await withTimeout(Promise.all(ctx.connections.map((c) => c.close())), 10_000, 'closing the connections');
    await withTimeout(destroyBucket(ctx.bucket), 10_000, 'deleting the bucket');
  });

  NatsRegistrySuite(
    'keeps entries across a nats-server restart, and its clients reconnect by themselves',
    async (ctx) => {
      const [writer, reader] = [ctx.open(), ctx.open()];
      const events = reader.watch({ service: 'greeter', signal: ctx.controller.signal })[Symbol.asyncIterator]();
      await reader.register(serviceRecord('other', '1.0.0', ['r'])); // returns once the reader's watch follows the bucket
      await writer.register(serviceRecord('greeter', '1.0.0', ['a']), { ttl: 0 });
      assert.is((await withTimeout(events.next(), 3000, 'the create')).value?.type, 'create');
      await withTimeout((await natsServer()).restart(), 15_000, 'restarting nats-server');
      const read = () => withTimeout(reader.getService('greeter'), 3000, 'getService').catch(() => []);
      await eventually(
        async () => ids(await read()).join() === 'a',
        20_000,
        'the node read back after the restart',
        100,
      );
      // Right after a restart JetStream may still be recovering its streams: on a loaded machine a write can time out
      // once (nats.js's request timeout) before it is taken. The client itself reconnected: the write is retried.
      await eventually(
        () =>
          writer.register(serviceRecord('greeter', '1.0.0', ['b'])).then(
            () => true,
            () => false,
          ),
        20_000,
        'the writer to register after the restart',
        200,
      );
      assert.equal(ids(await reader.getService('greeter')), ['a', 'b']);
      // The watch's ordered consumer is recreated once the client notices missed heartbeats (5 s each): 10-15 s.
      const updated = (await withTimeout(events.next(), 30_000, 'the watch resuming after the restart'))
        .value as RegistryEvent;
      assert.equal([updated.type, ids([updated.service])], ['update', ['b']]);
    },
  );

  NatsRegistrySuite('lets two instances on one server see and remove each other’s nodes', async (ctx) => {
    const [one, two] = [ctx.open(), ctx.open()];
    const events = two.watch({ signal: ctx.controller.signal })[Symbol.asyncIterator]();
    await two.register(serviceRecord('other', '1.0.0', ['x'])); // returns once two's watch follows the bucket
    assert.is((await withTimeout(events.next(), 3000, 'the create of other')).value?.service.name, 'other');
    await one.register(serviceRecord('greeter', '1.0.0', ['from-one']), { ttl: 30 });
    await two.register(serviceRecord('greeter', '1.0.0', ['from-two']), { ttl: 30 });
    assert.equal(ids(await one.getService('greeter')), ['from-one', 'from-two']);
    assert.equal(ids(await two.listServices()), ['from-one', 'from-two', 'x']);
    const created = (await withTimeout(events.next(), 3000, 'the create made by the other instance'))
      .value as RegistryEvent;
    assert.equal([created.type, ids([created.service])], ['create', ['from-one']]);
    await two.deregister(serviceRecord('greeter', '1.0.0', ['from-one']));
    assert.equal(ids(await one.getService('greeter')), ['from-two']);
  });

  NatsRegistrySuite('stores a ttl-0 node as never expiring, in a bucket without a max age', async (ctx) => {
    const registry = ctx.open();
    await registry.register(serviceRecord('lambda-fn', '1.0.0', ['forever']), { ttl: 0 });
    await registry.register(serviceRecord('lambda-fn', '1.0.0', ['brief']), { ttl: 0.05 });
    await sleep(100);
    assert.equal(ids(await registry.getService('lambda-fn')), ['forever']);
    const kv = await (await adminConnection()).jetstream().views.kv(ctx.bucket, { bindOnly: true });
    const stored = (await kv.get('lambda-fn.1=2E0=2E0.forever'))?.json<Record<string, unknown>>();
    assert.equal(Object.keys(stored ?? {}).sort(), ['expires', 'node', 'registered', 'service']);
    assert.is(stored?.expires, 0);
    const info = await (await (await adminConnection()).jetstreamManager()).streams.info(`KV_${ctx.bucket}`);
    assert.equal([info.config.max_age, info.config.max_msgs_per_subject], [0, 1]);
    await eventually(
      async () => (await kv.get('lambda-fn.1=2E0=2E0.brief'))?.operation === 'DEL',
      3000,
      'getService deleting the expired key',
    );
  });

  NatsRegistrySuite(
    'a deregistration sweeps its service’s delete markers older than markerAge out of the bucket',
    async (ctx) => {
      const jsm = await (await adminConnection()).jetstreamManager();
      const stored = async () => (await jsm.streams.info(`KV_${ctx.bucket}`)).state.messages;
      // One-shot instances: each registers once and deregisters. A watch opened before still sees each delete.
      const keeping = ctx.open({ markerAge: 60_000 });
      const events = keeping.watch({ service: 'oneshot', signal: ctx.controller.signal })[Symbol.asyncIterator]();
      await keeping.register(serviceRecord('other', '1.0.0', ['stays'])); // returns once the watch follows the bucket
      for (let i = 0; i < 5; i++) {
        await keeping.register(serviceRecord('oneshot', '1.0.0', [`k${i}`]));
        await keeping.deregister(serviceRecord('oneshot', '1.0.0', [`k${i}`]));
      }
      const types: string[] = [];
      for (let i = 0; i < 10; i++)
        types.push(((await withTimeout(events.next(), 10_000, 'a watch event')).value as RegistryEvent).type);
      assert.equal(types, Array.from({ length: 5 }, () => ['create', 'delete']).flat());
      assert.is(await stored(), 6, 'five markers younger than markerAge, and the live node');
      // A registry whose markerAge has passed for all of them sweeps them on its next deregistration.
      const sweeping = ctx.open({ markerAge: 0 });
      await sweeping.register(serviceRecord('oneshot', '1.0.0', ['s']));
      await sweeping.deregister(serviceRecord('oneshot', '1.0.0', ['s']));
      assert.is(await stored(), 1, 'only the live node of the other service is left');
      assert.equal(ids(await sweeping.listServices()), ['stays']);
      await sweeping.register(serviceRecord('oneshot', '1.0.0', ['again']));
      assert.equal(ids(await keeping.getService('oneshot')), ['again']);
    },
  );

  NatsRegistrySuite('encodes any name into keys without collisions, and reads only the asked service', async (ctx) => {
    const registry = ctx.open();
    const names = ['a.b', 'a=2Eb', 'a', 'a.*', '>', 'ünï cødé', 'x'.repeat(300)];
    for (const name of names)
      await registry.register(serviceRecord(name, name === 'a' ? '' : '1.0.0', [`${name}.node`]));
    for (const name of names) assert.equal(ids(await registry.getService(name)), [`${name}.node`], name);
    assert.is((await registry.listServices()).length, names.length);
    for (const name of names)
      await registry.deregister(serviceRecord(name, name === 'a' ? '' : '1.0.0', [`${name}.node`]));
    assert.equal(await registry.listServices(), []);
  });

  NatsRegistrySuite('uses a connection it is given, and leaves it open on close', async (ctx) => {
    const connection = await connectNats({ address: ctx.url });
    ctx.connections.push(connection);
    const registry = ctx.open({ address: undefined, connection });
    await registry.register(serviceRecord('greeter', '1.0.0', ['a']));
    await registry.close();
    assert.not.ok(connection.isClosed());
    const err = await rejects(() => registry.getService('greeter'));
    assert.ok(isMicroError(err) && err.code === 503, 'closed');
  });

  NatsRegistrySuite('turns a KV failure into a MicroError that keeps the original as cause', async (ctx) => {
    const connection = await connectNats({ address: ctx.url });
    const registry = ctx.open({ address: undefined, connection });
    await registry.register(serviceRecord('greeter', '1.0.0', ['a']));
    await connection.close();
    const err = await rejects(() => registry.getService('greeter'));
    assert.ok(isMicroError(err) && err.code === 503 && err.retryable, String(err));
    assert.ok(err.cause instanceof Error && !isMicroError(err.cause));
  });

  NatsRegistrySuite.run();

  // ---

  registryContract('NatsRegistry contract', async () => {
    const { url } = await natsServer();
    const bucket = freshBucket();
    const registry = createNatsRegistry({ address: url, bucket });
    return { registry, cleanup: async () => (await registry.close(), await destroyBucket(bucket)) };
  });

  // ---

  const createNatsRegistrySuite = suite('createNatsRegistry');

  createNatsRegistrySuite.after(() => withTimeout(stopEverything(), 20_000, 'stopping nats-server'));

  createNatsRegistrySuite(
    'refuses a malformed address, a bad bucket name or markerAge, or no server at all with a ConfigError',
    () => {
      for (const options of [
        { address: 'http://127.0.0.1:4222' },
        { address: '' },
        {},
        { address: 'nats://127.0.0.1:4222', bucket: 'a.b' },
        { address: 'nats://127.0.0.1:4222', markerAge: -1 },
      ]) {
        assert.throws(
          () => createNatsRegistry(options as NatsRegistryOptions),
          (err: unknown) => err instanceof ConfigError,
          JSON.stringify(options),
        );
      }
    },
  );

  createNatsRegistrySuite('answers a retryable 503 when nobody listens at the address', async () => {
    const registry = createNatsRegistry({ address: 'nats://127.0.0.1:1', bucket: freshBucket() });
    try {
      const err = await withTimeout(
        rejects(() => registry.getService('greeter')),
        10_000,
        'the failed connection',
      );
      assert.ok(
        isMicroError(err) && err.code === 503 && err.retryable && /cannot connect to NATS/.test(err.detail),
        String(err),
      );
    } finally {
      await registry.close();
    }
  });

  createNatsRegistrySuite('uses the micro_fn_registry bucket by default', () => {
    assert.is(createNatsRegistry({ address: 'nats://127.0.0.1:4222' }).bucket, 'micro_fn_registry');
  });

  createNatsRegistrySuite.run();
}
