/** The Broker contract: every broker plugin (memory, local, NATS, JetStream) runs this suite with its own factory. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  deadLetterHeaders,
  deadLetterTopic,
  type Broker,
  type Delivery,
  type DeliveryHandler,
} from '../../runtime/core/broker.js';
import { eventually, rejects, sleep, withTimeout } from '../helpers.js';

export interface BrokerFixture {
  broker: Broker;
  /** Closes the broker and whatever the factory opened for it (servers, connections). */
  cleanup(): Promise<void>;
}

export interface BrokerContractOptions {
  /** False for at-most-once brokers (NATS core): skips the nak, redelivery and dead-letter tests. Default true. */
  redelivery?: boolean;
}

interface Context {
  fixture?: BrokerFixture;
}

export const encode = (text: string) => new TextEncoder().encode(text);
export const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A handler that records every delivery (and runs `then` on it, if given). */
export function collector(then?: (delivery: Delivery) => void | Promise<void>): {
  deliveries: Delivery[];
  handler: DeliveryHandler;
} {
  const deliveries: Delivery[] = [];
  return { deliveries, handler: (d) => (deliveries.push(d), then?.(d)) };
}

/** Waits until `deliveries` holds `count`, then a little longer to catch any extra, and checks for none. */
async function exactly(deliveries: Delivery[], count: number, what: string): Promise<void> {
  await eventually(() => deliveries.length >= count, 5000, `${count} ${what}`);
  await sleep(50);
  assert.is(deliveries.length, count, `exactly ${count} ${what}`);
}

export function brokerContract(
  name: string,
  create: () => Promise<BrokerFixture>,
  options: BrokerContractOptions = {},
): void {
  const test = suite<Context>(name, {});
  const redeliveryTest = options.redelivery === false ? test.skip : test;
  const brokerOf = (ctx: Context) => ctx.fixture!.broker;

  test.before.each(async (ctx) => {
    ctx.fixture = await withTimeout(create(), 10_000, 'creating the broker');
  });
  test.after.each(async (ctx) => {
    const fixture = ctx.fixture;
    ctx.fixture = undefined; // after.each runs again when it throws: never clean up twice
    await fixture?.cleanup();
  });

  test('delivers a published message with an id, its topic, headers and body, never inside publish', async (ctx) => {
    let publishing = false;
    const seen: boolean[] = [];
    const { deliveries, handler } = collector(() => void seen.push(publishing));
    await brokerOf(ctx).subscribe('orders', handler);
    publishing = true;
    const published = brokerOf(ctx).publish('orders', { headers: { 'x-trace': 't1' }, body: encode('hello') });
    publishing = false;
    await withTimeout(published, 3000, 'publish');
    await exactly(deliveries, 1, 'delivery');
    const { message, attempt } = deliveries[0]!;
    assert.equal(
      [message.topic, message.headers['x-trace'], decode(message.body), attempt, seen],
      ['orders', 't1', 'hello', 1, [false]],
    );
    assert.type(message.id, 'string');
    assert.ok(message.id.length > 0);
  });

  test('every subscription without a queue gets every message', async (ctx) => {
    const first = collector();
    const second = collector();
    const elsewhere = collector();
    await brokerOf(ctx).subscribe('orders', first.handler);
    await brokerOf(ctx).subscribe('orders', second.handler);
    await brokerOf(ctx).subscribe('other', elsewhere.handler);
    for (let i = 0; i < 3; i++) await brokerOf(ctx).publish('orders', { body: encode(`m${i}`) });
    await exactly(first.deliveries, 3, 'messages for the first subscription');
    await exactly(second.deliveries, 3, 'messages for the second subscription');
    assert.equal(first.deliveries.map((d) => decode(d.message.body)).sort(), ['m0', 'm1', 'm2']);
    assert.is(elsewhere.deliveries.length, 0, 'topics match exactly');
  });

  test('a queue group handles each message exactly once and every member gets some', async (ctx) => {
    const a = collector();
    const b = collector();
    const plain = collector();
    await brokerOf(ctx).subscribe('orders', a.handler, { queue: 'billing' });
    await brokerOf(ctx).subscribe('orders', b.handler, { queue: 'billing' });
    await brokerOf(ctx).subscribe('orders', plain.handler);
    for (let i = 0; i < 20; i++) await brokerOf(ctx).publish('orders', { body: encode(`m${i}`) });
    const group = () => [...a.deliveries, ...b.deliveries];
    await eventually(() => group().length >= 20, 5000, '20 messages in the group');
    await exactly(plain.deliveries, 20, 'messages for the plain subscription');
    assert.is(group().length, 20, 'no message handled twice');
    assert.is(new Set(group().map((d) => d.message.id)).size, 20);
    assert.ok(
      a.deliveries.length > 0 && b.deliveries.length > 0,
      `both members got some (${a.deliveries.length}/${b.deliveries.length})`,
    );
  });

  test('a subscription with max 1 takes exactly one of several messages', async (ctx) => {
    const once = collector();
    await brokerOf(ctx).subscribe('orders', once.handler, { max: 1 });
    for (let i = 0; i < 5; i++) await brokerOf(ctx).publish('orders', { body: encode(`m${i}`) });
    await exactly(once.deliveries, 1, 'message');
  });

  test('a max 1 member of a queue group takes one message and leaves the rest to the group', async (ctx) => {
    const once = collector();
    const rest = collector();
    await brokerOf(ctx).subscribe('orders', once.handler, { queue: 'fn', max: 1 });
    await brokerOf(ctx).subscribe('orders', rest.handler, { queue: 'fn' });
    // 20 messages: a broker may pick the member for each at random (core NATS does), and the max 1 member
    // must still be picked at least once (the chance it is not: 2^-20).
    await Promise.all(Array.from({ length: 20 }, (_, i) => brokerOf(ctx).publish('orders', { body: encode(`m${i}`) })));
    await exactly(rest.deliveries, 19, 'messages for the other member');
    assert.is(once.deliveries.length, 1);
  });

  test('unsubscribe stops deliveries and may be called twice', async (ctx) => {
    const { deliveries, handler } = collector();
    const subscription = await brokerOf(ctx).subscribe('orders', handler);
    assert.is(subscription.topic, 'orders');
    await brokerOf(ctx).publish('orders', { body: encode('before') });
    await exactly(deliveries, 1, 'message before unsubscribing');
    await subscription.unsubscribe();
    await subscription.unsubscribe();
    await brokerOf(ctx).publish('orders', { body: encode('after') });
    await sleep(50);
    assert.equal(
      deliveries.map((d) => decode(d.message.body)),
      ['before'],
    );
  });

  test('publishing to a topic without subscribers resolves', async (ctx) => {
    await withTimeout(brokerOf(ctx).publish('nobody.listens', { body: encode('x') }), 3000, 'publish');
    assert.ok(true);
  });

  test('publishing after close rejects', async (ctx) => {
    await brokerOf(ctx).close?.();
    const err = await rejects(() => brokerOf(ctx).publish('orders', { body: encode('x') }));
    assert.instance(err, Error);
  });

  redeliveryTest('a handler that rejects is redelivered with attempt 2', async (ctx) => {
    const { deliveries, handler } = collector(async (d) => {
      if (d.attempt === 1) throw new Error('first try fails');
    });
    await brokerOf(ctx).subscribe('orders', handler);
    await brokerOf(ctx).publish('orders', { headers: { 'x-trace': 't1' }, body: encode('retry me') });
    await exactly(deliveries, 2, 'deliveries');
    const [first, second] = deliveries;
    assert.equal(
      [second!.attempt, second!.message.id, second!.message.headers['x-trace'], decode(second!.message.body)],
      [2, first!.message.id, 't1', 'retry me'],
    );
  });

  redeliveryTest('a handler that throws synchronously is redelivered like a rejection', async (ctx) => {
    const attempts: number[] = [];
    await brokerOf(ctx).subscribe('orders', (d) => {
      attempts.push(d.attempt);
      if (d.attempt === 1) throw new Error('sync failure');
    });
    await brokerOf(ctx).publish('orders', { body: encode('x') });
    await eventually(() => attempts.length >= 2, 5000, 'the redelivery');
    await sleep(50);
    assert.equal(attempts, [1, 2]);
  });

  redeliveryTest('a manual nak redelivers the same message with the next attempt', async (ctx) => {
    const { deliveries, handler } = collector((d) => (d.attempt === 1 ? d.nak(0) : d.ack()));
    await brokerOf(ctx).subscribe('orders', handler, { ack: 'manual' });
    await brokerOf(ctx).publish('orders', { body: encode('again') });
    await exactly(deliveries, 2, 'deliveries');
    assert.equal(
      deliveries.map((d) => d.attempt),
      [1, 2],
    );
    assert.is(deliveries[1]!.message.id, deliveries[0]!.message.id);
  });

  redeliveryTest(
    'a message nakked past the attempt limit goes to the dead-letter topic with its headers',
    async (ctx) => {
      const failing = collector((d) => d.nak(0));
      const dead = collector();
      await brokerOf(ctx).subscribe('orders', failing.handler, { ack: 'manual', queue: 'billing' });
      await brokerOf(ctx).subscribe(deadLetterTopic('orders'), dead.handler);
      await brokerOf(ctx).publish('orders', { headers: { 'x-trace': 't1' }, body: encode('poison') });
      await exactly(dead.deliveries, 1, 'dead letter');
      const tries = failing.deliveries.length;
      assert.ok(tries >= 2, `redelivered before giving up (${tries} attempts)`);
      assert.equal(
        failing.deliveries.map((d) => d.attempt),
        Array.from({ length: tries }, (_, i) => i + 1),
      );
      const { message } = dead.deliveries[0]!;
      assert.is(message.topic, 'dlq.orders');
      assert.is(decode(message.body), 'poison');
      assert.is(message.headers['x-trace'], 't1');
      assert.is(message.headers[deadLetterHeaders.topic], 'orders');
      assert.is(message.headers[deadLetterHeaders.attempts], String(tries));
      assert.type(message.headers[deadLetterHeaders.reason], 'string');
    },
  );

  redeliveryTest('term dead-letters a message at once with its reason', async (ctx) => {
    const terminated = collector((d) => d.term('not parseable'));
    const dead = collector();
    await brokerOf(ctx).subscribe('orders', terminated.handler, { ack: 'manual' });
    await brokerOf(ctx).subscribe(deadLetterTopic('orders'), dead.handler);
    await brokerOf(ctx).publish('orders', { headers: { 'x-trace': 't1' }, body: encode('poison') });
    await exactly(dead.deliveries, 1, 'dead letter');
    assert.is(terminated.deliveries.length, 1, 'never redelivered');
    const { headers } = dead.deliveries[0]!.message;
    assert.equal(
      [headers['x-trace'], headers[deadLetterHeaders.reason], headers[deadLetterHeaders.attempts]],
      ['t1', 'not parseable', '1'],
    );
  });

  redeliveryTest('settling a delivery twice changes nothing', async (ctx) => {
    const settled = collector(async (d) => {
      await d.ack();
      await d.nak(0);
      await d.term('too late');
    });
    const dead = collector();
    await brokerOf(ctx).subscribe('orders', settled.handler, { ack: 'manual' });
    await brokerOf(ctx).subscribe(deadLetterTopic('orders'), dead.handler);
    await brokerOf(ctx).publish('orders', { body: encode('once') });
    await exactly(settled.deliveries, 1, 'delivery');
    await sleep(100);
    assert.equal([settled.deliveries.length, dead.deliveries.length], [1, 0]);
  });

  redeliveryTest('a nakked message goes to a remaining member once its own subscription left', async (ctx) => {
    const leaving = collector(async (d) => {
      await subscription.unsubscribe();
      await d.nak(20);
    });
    const subscription = await brokerOf(ctx).subscribe('orders', leaving.handler, { queue: 'billing', ack: 'manual' });
    await brokerOf(ctx).publish('orders', { body: encode('hand over') });
    await exactly(leaving.deliveries, 1, 'first delivery');
    const staying = collector();
    await brokerOf(ctx).subscribe('orders', staying.handler, { queue: 'billing' });
    await exactly(staying.deliveries, 1, 'redelivery to the remaining member');
    assert.equal([staying.deliveries[0]!.attempt, decode(staying.deliveries[0]!.message.body)], [2, 'hand over']);
  });

  test.run();
}
