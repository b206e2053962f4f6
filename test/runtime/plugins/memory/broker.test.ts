import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deadLetterHeaders, deadLetterTopic } from '../../../../runtime/core/broker.js';
import { isMicroError } from '../../../../runtime/core/errors.js';
import { MemoryBroker, createMemoryBroker } from '../../../../runtime/plugins/memory/broker.js';
import { brokerContract, collector, decode, encode } from '../../../contracts/broker.js';
import { eventually, rejects, sleep } from '../../../helpers.js';

brokerContract('MemoryBroker contract', async () => {
  const broker = createMemoryBroker();
  return { broker, cleanup: () => broker.close() };
});

// ---

const MemoryBrokerSuite = suite<{ broker: MemoryBroker }>('MemoryBroker', { broker: new MemoryBroker() });

MemoryBrokerSuite.before.each((ctx) => {
  ctx.broker = new MemoryBroker();
});
MemoryBrokerSuite.after.each((ctx) => ctx.broker.close());

MemoryBrokerSuite(
  "a dead letter's headers record each failed attempt's code, detail and time, as nak was told",
  async () => {
    const broker = new MemoryBroker({ maxAttempts: 3, backoff: () => 0 });
    try {
      const dead = collector();
      await broker.subscribe(deadLetterTopic('orders'), dead.handler);
      const failure = (attempt: number) =>
        attempt === 2 ? undefined : { code: 400 + attempt, detail: `no ${attempt}` };
      await broker.subscribe('orders', (d) => d.nak(0, failure(d.attempt)), { ack: 'manual' });
      await broker.publish('orders', { body: encode('x') });
      await eventually(() => dead.deliveries.length === 1, 2000, 'the dead letter');
      const recorded = JSON.parse(dead.deliveries[0]!.message.headers[deadLetterHeaders.errors]!) as {
        attempt: number;
        code: number;
        detail: string;
        at: string;
      }[];
      assert.equal(
        recorded.map(({ attempt, code, detail }) => [attempt, code, detail]),
        [
          [1, 401, 'no 1'],
          [2, 500, 'nakked without a reason'],
          [3, 403, 'no 3'],
        ],
      );
      assert.ok(recorded.every((a) => !Number.isNaN(Date.parse(a.at))));
    } finally {
      await broker.close();
    }
  },
);

MemoryBrokerSuite('drops a message published while nobody subscribed', async ({ broker }) => {
  await broker.publish('orders', { body: encode('lost') });
  const { deliveries, handler } = collector();
  await broker.subscribe('orders', handler);
  await broker.publish('orders', { body: encode('kept') });
  await eventually(() => deliveries.length > 0, 2000, 'a delivery');
  await sleep(30);
  assert.equal(
    deliveries.map((d) => decode(d.message.body)),
    ['kept'],
  );
});

MemoryBrokerSuite('keeps a redelivery until a member of its queue group subscribes', async ({ broker }) => {
  const leaving = collector(async (d) => {
    await subscription.unsubscribe();
    await d.nak(0);
  });
  const subscription = await broker.subscribe('orders', leaving.handler, { queue: 'billing', ack: 'manual' });
  await broker.publish('orders', { body: encode('wait for me') });
  await eventually(() => leaving.deliveries.length === 1, 2000, 'the first delivery');
  await sleep(50); // the redelivery is due now, but the group has no member
  const late = collector();
  await broker.subscribe('orders', late.handler, { queue: 'billing' });
  await eventually(() => late.deliveries.length === 1, 2000, 'the redelivery');
  assert.is(late.deliveries[0]!.attempt, 2);
});

MemoryBrokerSuite('drops a redelivery for a plain subscription that has left', async ({ broker }) => {
  const first = collector(async (d) => {
    await subscription.unsubscribe();
    await d.nak(0);
  });
  const subscription = await broker.subscribe('orders', first.handler, { ack: 'manual' });
  await broker.publish('orders', { body: encode('x') });
  await eventually(() => first.deliveries.length === 1, 2000, 'the first delivery');
  const later = collector();
  await broker.subscribe('orders', later.handler);
  await sleep(50);
  assert.equal([first.deliveries.length, later.deliveries.length], [1, 0]);
});

MemoryBrokerSuite(
  'never hands a max 1 subscription a second message, even when messages are published together',
  async ({ broker }) => {
    const once = collector();
    await broker.subscribe('orders', once.handler, { queue: 'fn', max: 1 });
    void broker.publish('orders', { body: encode('a') });
    void broker.publish('orders', { body: encode('b') });
    await broker.publish('orders', { body: encode('c') });
    await eventually(() => once.deliveries.length === 1, 2000, 'one delivery');
    await sleep(30);
    assert.equal(
      once.deliveries.map((d) => decode(d.message.body)),
      ['a'],
    );
  },
);

MemoryBrokerSuite('gives every subscription its own copy of a message', async ({ broker }) => {
  const vandal = collector((d) => {
    d.message.body.fill(0);
    d.message.headers['x-trace'] = 'changed';
  });
  const reader = collector();
  await broker.subscribe('orders', vandal.handler);
  await broker.subscribe('orders', reader.handler);
  const body = encode('intact');
  await broker.publish('orders', { headers: { 'x-trace': 't1' }, body });
  body.fill(0);
  await eventually(() => reader.deliveries.length === 1 && vandal.deliveries.length === 1, 2000, 'both deliveries');
  assert.equal(
    [decode(reader.deliveries[0]!.message.body), reader.deliveries[0]!.message.headers['x-trace']],
    ['intact', 't1'],
  );
});

MemoryBrokerSuite('naks a manual delivery whose handler throws before settling it', async ({ broker }) => {
  const attempts: number[] = [];
  await broker.subscribe(
    'orders',
    (d) => {
      attempts.push(d.attempt);
      if (d.attempt === 1) throw new Error('forgot to settle');
      return d.ack();
    },
    { ack: 'manual' },
  );
  await broker.publish('orders', { body: encode('x') });
  await eventually(() => attempts.length === 2, 2000, 'the redelivery');
  assert.equal(attempts, [1, 2]);
});

MemoryBrokerSuite('waits the default backoff before redelivering a failed message', async ({ broker }) => {
  const at: number[] = [];
  await broker.subscribe('orders', () => {
    at.push(performance.now());
    if (at.length === 1) throw new Error('fail once');
  });
  await broker.publish('orders', { body: encode('x') });
  await eventually(() => at.length === 2, 2000, 'the redelivery');
  assert.ok(at[1]! - at[0]! >= 15, `waited ${at[1]! - at[0]!} ms, the first backoff is 20 ms`);
});

MemoryBrokerSuite('close cancels redeliveries and refuses publish and subscribe with a 503', async ({ broker }) => {
  const { deliveries, handler } = collector((d) => d.nak(30));
  await broker.subscribe('orders', handler, { ack: 'manual' });
  await broker.publish('orders', { body: encode('x') });
  await eventually(() => deliveries.length === 1, 2000, 'the first delivery');
  await broker.close();
  await broker.close();
  await sleep(80);
  assert.is(deliveries.length, 1);
  for (const attempt of [
    () => broker.publish('orders', { body: encode('x') }),
    () => broker.subscribe('orders', handler),
  ]) {
    const err = await rejects(attempt);
    assert.ok(isMicroError(err) && err.code === 503, String(err));
  }
});

MemoryBrokerSuite('keeps two brokers in one process apart', async ({ broker }) => {
  const other = createMemoryBroker();
  try {
    const { deliveries, handler } = collector();
    await other.subscribe('orders', handler);
    await broker.publish('orders', { body: encode('x') });
    await sleep(30);
    assert.is(deliveries.length, 0);
  } finally {
    await other.close();
  }
});

MemoryBrokerSuite(
  'bounds the bytes waiting with maxBytes: past it 20 of 20 publishes get a retryable 503, and room comes back as messages settle',
  async () => {
    const broker = new MemoryBroker({ maxBytes: 10_000 });
    try {
      const held: (() => Promise<void>)[] = [];
      // A subscriber that holds every message: nothing is settled, so everything published waits.
      await broker.subscribe('orders', (d) => void held.push(d.ack), { ack: 'manual' });
      const kilobyte = new Uint8Array(1000);
      for (let i = 0; i < 10; i++) await broker.publish('orders', { body: kilobyte });
      assert.is(broker.waitingBytes, 10_000);
      let refused = 0;
      for (let i = 0; i < 20; i++) {
        const err = await broker.publish('orders', { body: kilobyte }).catch((e: unknown) => e);
        if (isMicroError(err) && err.code === 503 && err.retryable) refused++;
      }
      assert.is(refused, 20);
      assert.is(broker.waitingBytes, 10_000, 'nothing grew past the bound');
      await broker.publish('nobody.listens', { body: new Uint8Array(50_000) });
      assert.is(broker.waitingBytes, 10_000, 'a topic without subscribers holds nothing');
      await eventually(() => held.length === 10, 2000, '10 deliveries');
      await Promise.all(held.splice(0, 3).map((ack) => ack()));
      assert.is(broker.waitingBytes, 7000);
      await broker.publish('orders', { body: kilobyte });
      assert.is(broker.waitingBytes, 8000);
    } finally {
      await broker.close();
    }
  },
);

MemoryBrokerSuite(
  'counts a nakked message until it is dead-lettered, and takes the dead letter past the bound',
  async () => {
    const broker = new MemoryBroker({ maxBytes: 1000, backoff: () => 0, maxAttempts: 2 });
    try {
      const dead = collector();
      await broker.subscribe(deadLetterTopic('orders'), dead.handler, { ack: 'manual' });
      let attempts = 0;
      await broker.subscribe('orders', () => {
        attempts++;
        return Promise.reject(new Error('always fails'));
      });
      await broker.publish('orders', { body: new Uint8Array(1000) });
      await eventually(() => dead.deliveries.length === 1, 2000, 'the dead letter');
      assert.is(attempts, 2);
      // The dead letter waits (unsettled) and was taken past the bound: refusing it would lose an accepted message.
      assert.is(broker.waitingBytes, 1000);
      await dead.deliveries[0]!.ack();
      assert.is(broker.waitingBytes, 0);
    } finally {
      await broker.close();
    }
  },
);

MemoryBrokerSuite.run();

// ---

const createMemoryBrokerSuite = suite('createMemoryBroker');

createMemoryBrokerSuite('uses the given backoff and maxAttempts', async () => {
  const backoffs: number[] = [];
  const broker = createMemoryBroker({ maxAttempts: 3, backoff: (attempt) => (backoffs.push(attempt), 1) });
  try {
    assert.instance(broker, MemoryBroker);
    const failing = collector(() => Promise.reject(new Error('always')));
    const dead = collector();
    await broker.subscribe('orders', failing.handler);
    await broker.subscribe(deadLetterTopic('orders'), dead.handler);
    await broker.publish('orders', { body: encode('x') });
    await eventually(() => dead.deliveries.length === 1, 2000, 'the dead letter');
    assert.equal(
      failing.deliveries.map((d) => d.attempt),
      [1, 2, 3],
    );
    assert.equal(backoffs, [1, 2]);
    assert.is(dead.deliveries[0]!.message.headers[deadLetterHeaders.attempts], '3');
  } finally {
    await broker.close();
  }
});

createMemoryBrokerSuite(
  'refuses invalid options and subscribe options with a message that says how to fix them',
  async () => {
    assert.throws(() => createMemoryBroker({ maxAttempts: 0 }), /maxAttempts must be an integer >= 1/);
    assert.throws(() => createMemoryBroker({ backoff: 5 as unknown as () => number }), /backoff must be a function/);
    const broker = createMemoryBroker();
    try {
      await rejects(() => broker.subscribe('orders', () => {}, { max: 0 }));
      await rejects(() => broker.subscribe('orders', () => {}, { ack: 'sometimes' as 'auto' }));
      assert.instance(
        await rejects(() => broker.publish('orders', { body: 'text' as unknown as Uint8Array })),
        TypeError,
      );
    } finally {
      await broker.close();
    }
  },
);

createMemoryBrokerSuite.run();
