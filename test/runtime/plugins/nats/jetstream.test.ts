import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deadLetterHeaders, deadLetterTopic, type Broker, type Delivery } from '../../../../runtime/core/broker.js';
import { ConfigError } from '../../../../runtime/core/config.js';
import { isMicroError } from '../../../../runtime/core/errors.js';
import { connectNats } from '../../../../runtime/plugins/nats/connection.js';
import {
  JetStreamBroker,
  createJetStreamBroker,
  type JetStreamBrokerOptions,
} from '../../../../runtime/plugins/nats/jetstream.js';
import { brokerContract, collector, decode, encode } from '../../../contracts/broker.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';
import { eventually, rejects, sleep, withTimeout } from '../../../helpers.js';

const fast: Partial<JetStreamBrokerOptions> = { ackWait: 1000, backoff: () => 20, pullExpires: 1000 };
let topics = 0;
const freshTopic = () => `t${++topics}.${Math.random().toString(36).slice(2, 8)}.orders`;

if (natsAvailable()) {
  // At-least-once: every contract test applies, redelivery and dead letters included. A server per test: fresh streams.
  brokerContract('JetStreamBroker contract', async () => {
    const server = await startNatsServer();
    const broker = createJetStreamBroker({ address: server.url, ...fast });
    return { broker, cleanup: async () => void (await broker.close(), await server.cleanup()) };
  });

  // ---

  const test = suite<{
    server: NatsServer;
    brokers: Broker[];
    children: ChildProcess[];
    make(o?: Partial<JetStreamBrokerOptions>): JetStreamBroker;
  }>('JetStreamBroker');
  test.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer(), 10_000, 'nats-server');
    ctx.brokers = [];
    ctx.children = [];
    ctx.make = (o = {}) => {
      const broker = createJetStreamBroker({ address: ctx.server.url, ...fast, ...o });
      ctx.brokers.push(broker);
      return broker;
    };
  });
  test.after.each(async (ctx) => {
    for (const child of ctx.children.splice(0)) child.kill('SIGKILL');
    await Promise.allSettled(ctx.brokers.splice(0).map((b) => withTimeout(b.close!(), 10_000, 'closing a broker')));
  });
  test.after(async (ctx) => ctx.server?.cleanup());

  test('a one-shot subscription fetches exactly one stored message and leaves the rest to the next member', async ({
    make,
  }) => {
    const broker = make();
    const topic = freshTopic();
    for (let i = 0; i < 5; i++) await broker.publish(topic, { body: encode(`m${i}`) }); // stored before anyone subscribed
    const once = collector();
    await broker.subscribe(topic, once.handler, { queue: 'fn', max: 1 });
    await eventually(() => once.deliveries.length === 1, 5000, 'the one delivery');
    await sleep(300);
    assert.is(once.deliveries.length, 1);
    const next = collector();
    await broker.subscribe(topic, next.handler, { queue: 'fn' });
    await eventually(() => next.deliveries.length === 4, 5000, 'the other four');
    const bodies = [...once.deliveries, ...next.deliveries].map((d) => decode(d.message.body)).sort();
    assert.equal(bodies, ['m0', 'm1', 'm2', 'm3', 'm4']);
  });

  test('a subscriber killed in the middle of a handler loses nothing: the message comes back after the ack wait', async ({
    server,
    make,
    children,
  }) => {
    const topic = freshTopic();
    const module = fileURLToPath(new URL('../../../../runtime/plugins/nats/jetstream.ts', import.meta.url));
    const script = `const { createJetStreamBroker } = await import(${JSON.stringify(module)});
      const broker = createJetStreamBroker({ address: ${JSON.stringify(server.url)}, ackWait: 1000 });
      await broker.subscribe(${JSON.stringify(topic)}, (d) => { console.log('got ' + d.message.id); return new Promise(() => {}); }, { queue: 'workers' });
      console.log('ready');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    await eventually(() => out.includes('ready'), 15_000, 'the child subscribed');
    const broker = make();
    await broker.publish(topic, { body: encode('survives') });
    await eventually(() => out.includes('got '), 5000, 'the child took the message');
    child.kill('SIGKILL');
    const rest = collector();
    await broker.subscribe(topic, rest.handler, { queue: 'workers' });
    await eventually(() => rest.deliveries.length === 1, 5000, 'the redelivery');
    const { message, attempt } = rest.deliveries[0]!;
    assert.equal([decode(message.body), attempt, `got ${message.id}`], ['survives', 2, out.match(/got \S+/)![0]]);
  });

  test('a handler that runs longer than the ack wait reports progress and is not redelivered under it', async ({
    make,
  }) => {
    const broker = make({ ackWait: 1000 });
    const topic = freshTopic();
    const slow = collector(() => sleep(2600));
    await broker.subscribe(topic, slow.handler, { queue: 'slow' });
    await broker.publish(topic, { body: encode('slow') });
    await sleep(3200);
    assert.equal(
      slow.deliveries.map((d) => d.attempt),
      [1],
    );
  });

  test('a failing message is dead-lettered after maxDeliver to a stored dlq subject with its headers', async ({
    make,
  }) => {
    const broker = make({ maxDeliver: 3 });
    const topic = freshTopic();
    const failing = collector(() => Promise.reject(new Error('always')));
    await broker.subscribe(topic, failing.handler, { queue: 'billing' });
    await broker.publish(topic, { headers: { 'x-trace': 't1' }, body: encode('poison') });
    await eventually(() => failing.deliveries.length === 3, 5000, 'three attempts');
    await sleep(200);
    const dead = collector(); // subscribed after the fact: the dead letter was stored
    await broker.subscribe(deadLetterTopic(topic), dead.handler, { queue: 'ops' });
    await eventually(() => dead.deliveries.length === 1, 5000, 'the dead letter');
    const { headers } = dead.deliveries[0]!.message;
    assert.equal(
      failing.deliveries.map((d) => d.attempt),
      [1, 2, 3],
    );
    assert.equal(
      [
        headers['x-trace'],
        headers[deadLetterHeaders.topic],
        headers[deadLetterHeaders.attempts],
        headers[deadLetterHeaders.reason],
      ],
      ['t1', topic, '3', 'failed 3 attempts'],
    );
  });

  test('a last attempt that is never settled is dead-lettered, not silently dropped', async ({ make }) => {
    const broker = make({ maxDeliver: 1 });
    const topic = freshTopic();
    const forgetful = collector(() => {}); // manual, never settles
    const dead = collector();
    await broker.subscribe(topic, forgetful.handler, { queue: 'w', ack: 'manual' });
    await broker.subscribe(deadLetterTopic(topic), dead.handler);
    await broker.publish(topic, { body: encode('held') });
    await eventually(() => dead.deliveries.length === 1, 5000, 'the dead letter');
    assert.is(forgetful.deliveries.length, 1, 'the handler ran once');
    assert.match(dead.deliveries[0]!.message.headers[deadLetterHeaders.reason]!, /ack wait/);
  });

  test('a server restart during 200 publishes loses no acknowledged message and handles none twice after its ack', async ({
    server,
    make,
  }) => {
    const consumerBroker = make({ ackWait: 2000 });
    const producer = make();
    const topic = freshTopic();
    const bodies = new Set<string>();
    const acked = new Set<string>();
    const twiceAfterAck: string[] = [];
    await consumerBroker.subscribe(
      topic,
      async (d: Delivery) => {
        if (acked.has(d.message.id)) twiceAfterAck.push(`${decode(d.message.body)} (attempt ${d.attempt})`);
        bodies.add(decode(d.message.body));
        await d.ack().then(
          () => acked.add(d.message.id),
          () => {},
        );
      },
      { queue: 'restart', ack: 'manual' },
    );
    const published: string[] = [];
    let failed = 0;
    let restarted: Promise<void> = Promise.resolve();
    for (let i = 0; i < 200; i++) {
      if (i === 80) restarted = withTimeout(server.restart(), 15_000, 'the restart'); // file storage: streams and consumers survive
      const body = encode(`m${i}`);
      await withTimeout(producer.publish(topic, { headers: { 'x-n': String(i) }, body }), 15_000, `publish ${i}`).then(
        () => published.push(`m${i}`),
        () => failed++,
      );
    }
    await restarted; // finished while publishing went on: the clients reconnected by themselves
    await producer.publish(topic, { body: encode('after') });
    published.push('after');
    const missing = () => published.filter((b) => !bodies.has(b));
    await eventually(() => missing().length === 0, 30_000, 'every acknowledged publish handled', 50).catch(
      (err: Error) => {
        throw new Error(`${err.message}: missing ${missing().join(' ')}`);
      },
    );
    assert.ok(
      published.length >= 150,
      `most publishes succeeded across the restart (${published.length}, ${failed} failed)`,
    );
    assert.equal(twiceAfterAck, [], 'nothing delivered again after a confirmed ack');
  });

  test('a redelivery of a message this process is still handling waits for that outcome and does not run again', async ({
    make,
  }) => {
    const broker = make({ ackWait: 1000, concurrency: 4 }); // room to pull the redelivery while the first runs
    const topic = freshTopic();
    const calls: number[] = [];
    let finish!: () => void;
    const held = new Promise<void>((resolve) => (finish = resolve));
    await broker.subscribe(
      topic,
      async (d: Delivery) => {
        calls.push(d.attempt);
        // A blocked event loop sends no progress: the server's ack wait runs out and it sends the message again.
        for (const end = Date.now() + 2500; Date.now() < end;);
        await held;
      },
      { queue: 'held' },
    );
    await broker.publish(topic, { body: encode('slow') });
    await eventually(() => calls.length === 1, 5000, 'the first delivery');
    await sleep(2000); // the redelivery (attempt 2) arrives while the first still runs
    finish();
    const after = make();
    const later = collector();
    await after.subscribe(topic, later.handler, { queue: 'held' }); // same durable: anything unsettled comes here
    await sleep(3000);
    assert.equal(calls, [1], 'the handler ran once (1 call) across the redelivery');
    assert.is(later.deliveries.length, 0, 'nothing left unsettled for another member (0 deliveries)');
  });

  test('publish after close and a server without JetStream fail with a 503 that keeps the cause', async ({ make }) => {
    const closed = make();
    await closed.close();
    const err = await rejects(() => closed.publish('x', { body: encode('x') }));
    assert.ok(isMicroError(err) && err.code === 503, String(err));
    const plain = await startNatsServer({ jetstream: false });
    try {
      const broker = make({ address: plain.url });
      const noJs = await rejects(() => withTimeout(broker.publish('x', { body: encode('x') }), 10_000, 'publish'));
      assert.ok(
        isMicroError(noJs) && noJs.code === 503 && noJs.cause !== undefined && /JetStream/.test(noJs.detail),
        String(noJs),
      );
      await broker.close();
    } finally {
      await plain.cleanup();
    }
  });

  test('uses a stream an operator made over the subject, and leaves a borrowed connection open', async ({ server }) => {
    const nc = await connectNats({ address: server.url });
    try {
      const jsm = await nc.jetstreamManager();
      const root = `ops${++topics}`;
      await jsm.streams.add({ name: `OPS_${topics}`, subjects: [`${root}.>`] });
      const broker = createJetStreamBroker({ connection: nc, ...fast });
      const got = collector();
      await broker.subscribe(`${root}.eu`, got.handler, { queue: 'eu' });
      await broker.publish(`${root}.eu`, { body: encode('x') });
      await eventually(() => got.deliveries.length === 1, 5000, 'the delivery');
      assert.is((await jsm.streams.info(`OPS_${topics}`)).state.messages, 1);
      await broker.close();
      assert.not.ok(nc.isClosed(), 'a borrowed connection stays open');
    } finally {
      await nc.close();
    }
  });

  test.run();

  // ---

  const create = suite('createJetStreamBroker');

  create('refuses bad options with a message that says how to fix them', () => {
    assert.instance(createJetStreamBroker({ address: 'nats://127.0.0.1:1' }), JetStreamBroker);
    assert.throws(
      () => createJetStreamBroker({} as JetStreamBrokerOptions),
      (e: Error) => e instanceof ConfigError && /address/.test(e.message),
    );
    assert.throws(() => createJetStreamBroker({ address: 'http://x' }), /nats:\/\/127.0.0.1:4222/);
    assert.throws(() => createJetStreamBroker({ address: 'nats://x', ackWait: 0 }), /ackWait must be an integer >= 1/);
    assert.throws(
      () => createJetStreamBroker({ address: 'nats://x', pullExpires: 10 }),
      /pullExpires must be an integer >= 1000/,
    );
    assert.throws(() => createJetStreamBroker({ address: 'nats://x', streamPrefix: 'a.b' }), /streamPrefix/);
  });

  create.run();
}
