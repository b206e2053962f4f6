import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deadLetterHeaders, deadLetterTopic } from '../../../../runtime/core/broker.js';
import { ConfigError } from '../../../../runtime/core/config.js';
import { isMicroError } from '../../../../runtime/core/errors.js';
import { connectNats } from '../../../../runtime/plugins/nats/connection.js';
import {
  NatsBroker,
  createNatsBroker,
  natsBrokerHeaders,
  type NatsBrokerOptions,
} from '../../../../runtime/plugins/nats/broker.js';
import { brokerContract, collector, decode, encode } from '../../../contracts/broker.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';
import { eventually, rejects, sleep, withTimeout } from '../../../helpers.js';

let topics = 0;
const freshTopic = () => `core${++topics}.orders`;

if (natsAvailable()) {
  // NATS core is at-most-once, so `redelivery: false`: the contract's redelivery tests assume a message survives
  // its subscribers (the last one hands a nakked message to a member that subscribes after the nak). What this
  // broker does offer, nak by re-publishing to the group and dead letters, is tested below instead.
  brokerContract(
    'NatsBroker contract',
    async () => {
      const server = await startNatsServer({ jetstream: false });
      const broker = createNatsBroker({ address: server.url, backoff: () => 10 });
      return { broker, cleanup: async () => void (await broker.close(), await server.cleanup()) };
    },
    { redelivery: false },
  );

  // ---

  const test = suite<{ server: NatsServer; brokers: NatsBroker[]; make(o?: Partial<NatsBrokerOptions>): NatsBroker }>(
    'NatsBroker',
  );
  test.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
    ctx.brokers = [];
    ctx.make = (o = {}) => {
      const broker = createNatsBroker({ address: ctx.server.url, backoff: () => 10, ...o });
      ctx.brokers.push(broker);
      return broker;
    };
  });
  test.after.each(
    async (ctx) =>
      void (await Promise.allSettled(
        ctx.brokers.splice(0).map((b) => withTimeout(b.close(), 5000, 'closing a broker')),
      )),
  );
  test.after(async (ctx) => ctx.server?.cleanup());

  test('a nakked message comes back with the next attempt to its own subscription only', async ({ make }) => {
    const broker = make();
    const topic = freshTopic();
    const retried = collector((d) => (d.attempt === 1 ? Promise.reject(new Error('once')) : undefined));
    const other = collector();
    const group = collector();
    await broker.subscribe(topic, retried.handler);
    await broker.subscribe(topic, other.handler);
    await broker.subscribe(topic, group.handler, { queue: 'billing' });
    await broker.publish(topic, { headers: { 'x-trace': 't1' }, body: encode('again') });
    await eventually(() => retried.deliveries.length === 2, 3000, 'the redelivery');
    await sleep(100);
    const [first, second] = retried.deliveries;
    assert.equal(
      [second!.attempt, second!.message.id, second!.message.topic, second!.message.headers],
      [2, first!.message.id, topic, { 'x-trace': 't1' }],
    );
    assert.equal([other.deliveries.length, group.deliveries.length], [1, 1], 'nobody else sees it twice');
  });

  test('a one-shot member refusing a message (nak 0) hands it back to its queue group', async ({ make }) => {
    const broker = make();
    const topic = freshTopic();
    const rest = collector();
    const refusing = collector(async (d) => {
      await broker.subscribe(topic, rest.handler, { queue: 'fn' }); // another member joins before the refusal
      await d.nak(0);
    });
    await broker.subscribe(topic, refusing.handler, { queue: 'fn', max: 1, ack: 'manual' });
    await broker.publish(topic, { body: encode('take me') });
    await eventually(() => rest.deliveries.length === 1, 3000, 'the refused message at the other member');
    await broker.publish(topic, { body: encode('second') }); // the one-shot member is gone: max 1 is the server's
    await eventually(() => rest.deliveries.length === 2, 3000, 'the second message');
    const [first, second] = rest.deliveries;
    assert.equal(
      [decode(first!.message.body), first!.attempt, first!.message.id],
      ['take me', 2, refusing.deliveries[0]!.message.id],
    );
    assert.equal([decode(second!.message.body), refusing.deliveries.length], ['second', 1]);
  });

  test('past maxAttempts, or on term, a message goes to the dead-letter topic with its headers', async ({ make }) => {
    const broker = make({ maxAttempts: 3 });
    const topic = freshTopic();
    const failing = collector((d) => (decode(d.message.body) === 'poison' ? d.term('unparseable') : d.nak(0)));
    const dead = collector();
    await broker.subscribe(topic, failing.handler, { queue: 'billing', ack: 'manual' });
    await broker.subscribe(deadLetterTopic(topic), dead.handler);
    await broker.publish(topic, { headers: { 'x-trace': 't1' }, body: encode('failing') });
    await broker.publish(topic, { body: encode('poison') });
    await eventually(() => dead.deliveries.length === 2, 3000, 'two dead letters');
    const byBody = Object.fromEntries(dead.deliveries.map((d) => [decode(d.message.body), d.message.headers]));
    assert.equal(
      failing.deliveries.filter((d) => decode(d.message.body) === 'failing').map((d) => d.attempt),
      [1, 2, 3],
    );
    assert.equal(
      [
        byBody.failing!['x-trace'],
        byBody.failing![deadLetterHeaders.attempts],
        byBody.failing![deadLetterHeaders.topic],
      ],
      ['t1', '3', topic],
    );
    assert.equal(
      [byBody.poison![deadLetterHeaders.reason], byBody.poison![deadLetterHeaders.attempts]],
      ['unparseable', '1'],
    );
  });

  test('is at-most-once: nothing is kept for a subscriber that comes later', async ({ make }) => {
    const broker = make();
    const topic = freshTopic();
    await broker.publish(topic, { body: encode('lost') });
    const late = collector();
    await broker.subscribe(topic, late.handler);
    await broker.publish(topic, { body: encode('kept') });
    await eventually(() => late.deliveries.length === 1, 3000, 'a delivery');
    await sleep(50);
    assert.equal(
      late.deliveries.map((d) => decode(d.message.body)),
      ['kept'],
    );
  });

  test('carries the message id in a header that other NATS clients can read', async ({ make, server }) => {
    const nc = await connectNats({ address: server.url });
    try {
      const topic = freshTopic();
      const seen: string[] = [];
      nc.subscribe(topic, { callback: (_err, msg) => void seen.push(msg.headers?.get(natsBrokerHeaders.id) ?? '') });
      await nc.flush();
      const broker = make();
      const got = collector();
      await broker.subscribe(topic, got.handler);
      await broker.publish(topic, { body: encode('x') });
      await eventually(() => seen.length === 1 && got.deliveries.length === 1, 3000, 'both deliveries');
      assert.is(seen[0], got.deliveries[0]!.message.id);
    } finally {
      await nc.close();
    }
  });

  test('leaves a borrowed connection open on close and turns nats.js failures into MicroErrors', async ({ server }) => {
    const nc = await connectNats({ address: server.url });
    try {
      const broker = createNatsBroker({ connection: nc });
      const bad = await rejects(() => broker.publish('bad subject', { body: encode('x') }));
      assert.ok(isMicroError(bad) && bad.code === 400, String(bad));
      const big = await rejects(() => broker.publish('orders', { body: new Uint8Array(2 * 1024 * 1024) })); // over max_payload
      assert.ok(isMicroError(big) && big.code === 413 && big.cause !== undefined, String(big));
      await broker.close();
      assert.not.ok(nc.isClosed(), 'a borrowed connection stays open');
      const closed = await rejects(() => broker.subscribe('orders', () => {}));
      assert.ok(isMicroError(closed) && closed.code === 503, String(closed));
    } finally {
      await nc.close();
    }
  });

  test.run();

  // ---

  const create = suite('createNatsBroker');

  create('refuses bad options with a message that says how to fix them', async () => {
    assert.instance(createNatsBroker({ address: '127.0.0.1:1' }), NatsBroker);
    assert.throws(
      () => createNatsBroker({} as NatsBrokerOptions),
      (e: Error) => e instanceof ConfigError && /address/.test(e.message),
    );
    assert.throws(() => createNatsBroker({ address: 'http://x' }), /nats:\/\/127.0.0.1:4222/);
    assert.throws(
      () => createNatsBroker({ address: 'nats://x', maxAttempts: 0 }),
      /maxAttempts must be an integer >= 1/,
    );
    const unreachable = createNatsBroker({ address: 'nats://127.0.0.1:1' });
    const err = await rejects(() => withTimeout(unreachable.publish('x', { body: encode('x') }), 10_000, 'publish'));
    assert.ok(isMicroError(err) && err.code === 503 && err.retryable, String(err));
    await unreachable.close();
  });

  create.run();
}
