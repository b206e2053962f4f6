/**
 * Subscriptions of other processes to serve's broker, on the durable broker: why each attempt failed reaches the
 * dead letter, whether the subscriber said it (Broker.Settle), threw, or let its ack wait run out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { errors } from '../../runtime/core/errors.js';
import { createHttpTransport } from '../../runtime/plugins/http/index.js';
import { createLocalBroker } from '../../runtime/plugins/local/broker.js';
import { createFileRegistry } from '../../runtime/plugins/local/registry.js';
import { openDurableBroker, type DurableBroker } from '../../serve/broker/durable-broker.js';
import { RemoteSubscriptions } from '../../serve/remote-broker.js';
import { LocalRuntime } from '../../serve/runtime.js';
import { encode } from '../contracts/broker.js';
import { eventually, withTimeout } from '../helpers.js';

interface Context {
  home: string;
  broker?: DurableBroker;
  close: (() => Promise<unknown>)[];
}

// ---
const remote = suite<Context>('RemoteSubscriptions', { home: '', close: [] });

remote.before.each(async (ctx) => {
  ctx.home = mkdtempSync(join(tmpdir(), 'micro-fn-remote-'));
  ctx.close = [];
  ctx.broker = await openDurableBroker({ home: ctx.home, maxAttempts: 3, backoff: () => 0 });
});

remote.after.each(async (ctx) => {
  for (const close of ctx.close.reverse()) await close().catch(() => {});
  await ctx.broker?.close();
  rmSync(ctx.home, { recursive: true, force: true });
});

const dead = async (broker: DurableBroker, topic: string) => {
  await eventually(async () => (await broker.deadLetters.list(topic)).length === 1, 10_000, 'the dead letter', 50);
  return (await broker.deadLetters.list(topic))[0]!.attempts!.map(({ attempt, code, detail }) => ({
    attempt,
    code,
    detail,
  }));
};

remote(
  'a dead letter records the failure a subscriber settled with, and an ack wait that ran out (408)',
  async (ctx) => {
    const subscriptions = new RemoteSubscriptions(ctx.broker!, { ackWait: 200 });
    ctx.close.push(() => subscriptions.close());
    const id = await subscriptions.subscribe('jobs', 'workers', undefined);
    await ctx.broker!.publish('jobs', { body: encode('job') });
    const first = await withTimeout(subscriptions.poll(id, 5000), 6000, 'the first delivery');
    await subscriptions.settle(id, first!.token, 'nak', 0, undefined, { code: 422, detail: 'cannot parse it' });
    const second = await withTimeout(subscriptions.poll(id, 5000), 6000, 'the second delivery');
    assert.is(second!.attempt, 2);
    // Not settled: its subscriber "died". The ack wait runs out, and the third attempt is refused outright.
    const third = await withTimeout(subscriptions.poll(id, 10_000), 11_000, 'the third delivery');
    await subscriptions.settle(id, third!.token, 'nak', 0, undefined, { code: 503, detail: 'busy' });
    const attempts = await dead(ctx.broker!, 'jobs');
    assert.equal(attempts.slice(0, 1), [{ attempt: 1, code: 422, detail: 'cannot parse it' }]);
    assert.is(attempts[1]!.code, 408);
    assert.match(attempts[1]!.detail, /not settled within the ack wait of 200 ms/);
    assert.equal(attempts[2], { attempt: 3, code: 503, detail: 'busy' });
  },
);

remote(
  "a subscriber in another process that throws: its error is each attempt's, through Broker.Settle",
  async (ctx) => {
    const registry = createFileRegistry({ home: ctx.home });
    const runtime = new LocalRuntime({
      home: ctx.home,
      registry,
      broker: ctx.broker!,
      deadLetters: ctx.broker!.deadLetters,
      address: '127.0.0.1:0',
      env: {},
      pool: 0,
      concurrency: 1,
      queue: 0,
      timeout: 5000,
      memory: 64,
      ttl: 60,
      echo: false,
    });
    await runtime.start();
    ctx.close.push(
      () => runtime.stop(),
      () => registry.close?.() ?? Promise.resolve(),
    );
    const transport = createHttpTransport();
    const client = createLocalBroker({ registry, transport, home: ctx.home });
    ctx.close.push(
      () => client.close(),
      () => transport.close(),
    );
    await client.subscribe(
      'jobs',
      (d) => {
        throw errors.badRequest('worker', `attempt ${d.attempt}: missing field "id"`);
      },
      { queue: 'workers' },
    );
    await client.publish('jobs', { body: encode('{}') });
    assert.equal(
      await dead(ctx.broker!, 'jobs'),
      [1, 2, 3].map((attempt) => ({ attempt, code: 400, detail: `attempt ${attempt}: missing field "id"` })),
    );
  },
);

remote.run();
