/**
 * The durable broker serve hosts: the broker contract (in process, and through a serve runtime as other processes
 * reach it), and what the store adds: order per group, redelivery after a reopen, groups known across restarts,
 * retention, the size bound, durable dead letters, prefetch, a store per serve, and a publish that survives SIGKILL.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Delivery } from '../../../runtime/core/broker.js';
import { isMicroError } from '../../../runtime/core/errors.js';
import { createHttpTransport } from '../../../runtime/plugins/http/index.js';
import { createLocalBroker } from '../../../runtime/plugins/local/broker.js';
import { createFileRegistry } from '../../../runtime/plugins/local/registry.js';
import {
  openDurableBroker,
  type DurableBroker,
  type DurableBrokerOptions,
} from '../../../serve/broker/durable-broker.js';
import { LocalRuntime } from '../../../serve/runtime.js';
import { brokerContract, collector, decode, encode } from '../../contracts/broker.js';
import { eventually, rejects, sleep, withTimeout } from '../../helpers.js';

brokerContract('DurableBroker contract', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-durable-'));
  const broker = await openDurableBroker({ home });
  return {
    broker,
    async cleanup() {
      await broker.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
});

brokerContract('LocalBroker contract, through a serve runtime hosting the DurableBroker', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-durable-local-'));
  const registry = createFileRegistry({ home });
  const hosted = await openDurableBroker({ home, prefetch: 4 });
  const runtime = new LocalRuntime({
    home,
    registry,
    broker: hosted,
    deadLetters: hosted.deadLetters,
    address: '127.0.0.1:0',
    env: {},
    pool: 0,
    concurrency: 1,
    queue: 0,
    timeout: 5000,
    memory: 64,
    ttl: 60,
    echo: false,
    ackWait: 2000,
  });
  await runtime.start();
  const transport = createHttpTransport();
  const broker = createLocalBroker({ registry, transport, home });
  return {
    broker,
    async cleanup() {
      await broker.close();
      await runtime.stop();
      await Promise.allSettled([transport.close(), hosted.close(), registry.close?.()]);
      rmSync(home, { recursive: true, force: true });
    },
  };
});

// ---
interface Context {
  home: string;
  open: Set<DurableBroker>;
}

const opened = suite<Context>('openDurableBroker', { home: '', open: new Set() });

opened.before.each((ctx) => {
  ctx.home = mkdtempSync(join(tmpdir(), 'micro-fn-durable-unit-'));
  ctx.open = new Set();
});

opened.after.each(async (ctx) => {
  await Promise.allSettled([...ctx.open].map((b) => b.close()));
  rmSync(ctx.home, { recursive: true, force: true });
});

async function open(ctx: Context, options: Partial<DurableBrokerOptions> = {}): Promise<DurableBroker> {
  const broker = await withTimeout(openDurableBroker({ home: ctx.home, ...options }), 10_000, 'opening the broker');
  ctx.open.add(broker);
  return broker;
}

async function reopen(ctx: Context, broker: DurableBroker, options: Partial<DurableBrokerOptions> = {}) {
  await broker.close();
  ctx.open.delete(broker);
  return open(ctx, options);
}

const bodies = (deliveries: Delivery[]) => deliveries.map((d) => decode(d.message.body));
const numbered = (n: number, prefix = 'm') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

opened('hands a queue group its messages in publish order, one at a time with prefetch 1', async (ctx) => {
  const broker = await open(ctx, { prefetch: 1 });
  let holding = 0;
  let most = 0;
  const { deliveries, handler } = collector(async () => {
    most = Math.max(most, ++holding);
    await sleep(1);
    holding--;
  });
  await broker.subscribe('orders', handler, { queue: 'billing' });
  await Promise.all(numbered(30).map((b) => broker.publish('orders', { body: encode(b) })));
  await eventually(() => deliveries.length === 30, 5000, '30 deliveries');
  assert.equal(bodies(deliveries), numbered(30));
  assert.is(most, 1, 'never more than prefetch (1) unsettled at once');
});

opened('gives every queue group of a topic every message once', async (ctx) => {
  const broker = await open(ctx);
  const billing = [collector(), collector()];
  const audit = collector();
  for (const c of billing) await broker.subscribe('orders', c.handler, { queue: 'billing' });
  await broker.subscribe('orders', audit.handler, { queue: 'audit' });
  await Promise.all(numbered(20).map((b) => broker.publish('orders', { body: encode(b) })));
  await eventually(() => audit.deliveries.length === 20, 5000, 'audit has 20');
  await eventually(() => billing[0]!.deliveries.length + billing[1]!.deliveries.length === 20, 5000, 'billing 20');
  await sleep(50);
  const both = [...billing[0]!.deliveries, ...billing[1]!.deliveries];
  assert.equal(bodies(both).sort(), numbered(20).sort(), 'billing: each of 20 once');
  assert.equal(bodies(audit.deliveries), numbered(20), 'audit: each of 20 once, in order');
  await eventually(() => broker.messages === 0, 5000, 'every message gone once both groups acked it');
});

opened('delivers again after a reopen every message not acked before it closed, and no acked one', async (ctx) => {
  let broker = await open(ctx);
  const billing = collector((d) => (['m0', 'm1'].includes(decode(d.message.body)) ? d.ack() : undefined));
  const audit = collector(); // never settles: every message stays kept for audit
  await broker.subscribe('orders', billing.handler, { queue: 'billing', ack: 'manual' });
  await broker.subscribe('orders', audit.handler, { queue: 'audit', ack: 'manual' });
  for (const b of numbered(5)) await broker.publish('orders', { body: encode(b) });
  await eventually(() => billing.deliveries.length === 5 && audit.deliveries.length === 5, 5000, '5 handed over');
  // Acks resolve once durable: wait for those two, as a handler's ack would be before serve is killed.
  await Promise.all(billing.deliveries.slice(0, 2).map((d) => d.ack()));
  broker = await reopen(ctx, broker);
  const billed = collector();
  const audited = collector();
  await broker.subscribe('orders', billed.handler, { queue: 'billing' });
  await broker.subscribe('orders', audited.handler, { queue: 'audit' });
  await eventually(() => billed.deliveries.length >= 3 && audited.deliveries.length >= 5, 5000, 'redeliveries');
  await sleep(50);
  assert.equal(bodies(billed.deliveries), ['m2', 'm3', 'm4'], 'billing: the 3 it did not ack, in order; never the 2');
  assert.equal(bodies(audited.deliveries), numbered(5), 'audit: all 5 it did not ack');
  assert.equal(
    billed.deliveries.map((d) => d.attempt),
    [1, 1, 1],
    'a crash of serve is not the handler failing: the same attempt',
  );
});

opened('keeps a message published before any queue group for the first group that subscribes', async (ctx) => {
  const broker = await open(ctx);
  await broker.publish('user.created', { headers: { 'x-trace': 't1' }, body: encode('early') });
  await sleep(50);
  const first = collector();
  await broker.subscribe('user.created', first.handler, { queue: 'mailer' });
  await eventually(() => first.deliveries.length === 1, 5000, 'the kept message');
  assert.equal(
    [decode(first.deliveries[0]!.message.body), first.deliveries[0]!.message.headers['x-trace']],
    ['early', 't1'],
  );
  const later = collector();
  await broker.subscribe('user.created', later.handler, { queue: 'audit' });
  await broker.publish('user.created', { body: encode('late') });
  await eventually(() => later.deliveries.length === 1 && first.deliveries.length === 2, 5000, 'the later one');
  await sleep(50);
  assert.equal(bodies(later.deliveries), ['late'], 'a later group gets only what comes after it subscribed');
});

opened('after a reopen, every queue group known before collects what is published until it is back', async (ctx) => {
  let broker = await open(ctx);
  await broker.subscribe('orders', () => {}, { queue: 'billing' });
  await broker.subscribe('orders', () => {}, { queue: 'audit' });
  broker = await reopen(ctx, broker);
  await broker.publish('orders', { body: encode('while away') });
  const billing = collector();
  await broker.subscribe('orders', billing.handler, { queue: 'billing' });
  await eventually(() => billing.deliveries.length === 1, 5000, 'billing gets it');
  const audit = collector();
  await broker.subscribe('orders', audit.handler, { queue: 'audit' });
  await eventually(() => audit.deliveries.length === 1, 5000, 'audit gets it too');
  assert.equal(bodies([...billing.deliveries, ...audit.deliveries]), ['while away', 'while away']);
});

opened('drops a kept message after the retention, and stops filling a group that had no member for it', async (ctx) => {
  const said: string[] = [];
  const broker = await open(ctx, { retention: 150, report: (line) => said.push(line) });
  const gone = await broker.subscribe('orders', () => {}, { queue: 'old' });
  await gone.unsubscribe();
  await broker.publish('nobody.yet', { body: encode('kept') });
  await eventually(() => broker.messages === 0, 5000, 'the kept message dropped after the retention');
  assert.is(broker.bytes, 0);
  assert.ok(
    said.some((l) => /dropped 1 message of nobody\.yet/.test(l)),
    said.join('\n'),
  );
  // "old" left more than the retention ago: it no longer collects, so a new message is kept for a first group.
  await broker.publish('orders', { body: encode('after') });
  const fresh = collector();
  await broker.subscribe('orders', fresh.handler, { queue: 'fresh' });
  await eventually(() => fresh.deliveries.length === 1, 5000, 'the first group to come takes it');
  const late = collector();
  await broker.subscribe('nobody.yet', late.handler, { queue: 'late' });
  await sleep(100);
  assert.is(late.deliveries.length, 0, 'the expired message never comes');
});

opened('refuses a publish past maxBytes with a retryable 503, and loses nothing it kept', async (ctx) => {
  const broker = await open(ctx, { maxBytes: 10_000 });
  const body = new Uint8Array(1000).fill(65);
  let kept = 0;
  let refusal: unknown;
  for (let i = 0; i < 20 && !refusal; i++) {
    try {
      await broker.publish('big', { body });
      kept++;
    } catch (err) {
      refusal = err;
    }
  }
  assert.ok(isMicroError(refusal), String(refusal));
  assert.equal([refusal.code, refusal.retryable], [503, true]);
  assert.match(refusal.detail, /limit of 10000 \(serve --broker-limit\): publish again once subscribers catch up/);
  assert.ok(kept >= 8 && kept <= 9, `${kept} of 1000 bytes each fit in 10000`);
  const { deliveries, handler } = collector();
  await broker.subscribe('big', handler, { queue: 'g' });
  await eventually(() => deliveries.length === kept, 5000, `all ${kept} kept`);
  await eventually(() => broker.bytes === 0, 5000, 'nothing kept once handled');
  await broker.publish('big', { body });
});

opened(
  "keeps dead letters across a reopen with every failed attempt's code, detail and time; replay hands them back",
  async (ctx) => {
    let broker = await open(ctx, { maxAttempts: 3, backoff: () => 0 });
    const failing = collector((d) => d.nak(0, { code: 500 + d.attempt, detail: `boom ${d.attempt}` }));
    await broker.subscribe('orders', failing.handler, { queue: 'billing', ack: 'manual' });
    const audit = collector();
    await broker.subscribe('orders', audit.handler, { queue: 'audit' });
    await broker.publish('orders', { headers: { 'x-trace': 't1' }, body: encode('poison') });
    await eventually(async () => (await broker.deadLetters.list('orders')).length === 1, 5000, 'a dead letter');
    broker = await reopen(ctx, broker, { maxAttempts: 3, backoff: () => 0 });
    const [letter, ...more] = await broker.deadLetters.list('orders');
    assert.is(more.length, 0);
    assert.is(letter!.body, 'poison');
    assert.is(letter!.headers['x-trace'], 't1');
    assert.is(letter!.headers['micro-dead-letter-reason'], 'failed 3 attempts');
    assert.equal(
      letter!.attempts!.map(({ attempt, code, detail }) => ({ attempt, code, detail })),
      [
        { attempt: 1, code: 501, detail: 'boom 1' },
        { attempt: 2, code: 502, detail: 'boom 2' },
        { attempt: 3, code: 503, detail: 'boom 3' },
      ],
    );
    assert.ok(
      letter!.attempts!.every((a) => !Number.isNaN(Date.parse(a.at))),
      'each with its time',
    );
    assert.equal(await broker.deadLetters.list('order'), [], 'topics match exactly');
    const fixed = collector();
    const other = collector();
    await broker.subscribe('orders', fixed.handler, { queue: 'billing' });
    await broker.subscribe('orders', other.handler, { queue: 'audit' });
    assert.is(await broker.deadLetters.replay('orders'), 1);
    await eventually(() => fixed.deliveries.length === 1, 5000, 'the replayed message');
    await sleep(50);
    assert.equal([fixed.deliveries[0]!.attempt, decode(fixed.deliveries[0]!.message.body)], [1, 'poison']);
    assert.is(other.deliveries.length, 0, 'only the group that failed it gets it again (audit handled it)');
    assert.equal(await broker.deadLetters.list('orders'), []);
    await eventually(() => broker.messages === 0, 5000, 'nothing kept');
  },
);

opened(
  'a second broker on the same home keeps a store of its own; the first store is free again once closed',
  async (ctx) => {
    const first = await open(ctx);
    const second = await open(ctx);
    assert.is.not(first.path, second.path);
    await first.publish('orders', { body: encode('in the first') });
    await first.close();
    ctx.open.delete(first);
    const third = await open(ctx);
    assert.is(third.path, first.path, 'the first store is taken again');
    const { deliveries, handler } = collector();
    await third.subscribe('orders', handler, { queue: 'g' });
    await eventually(() => deliveries.length === 1, 5000, 'what the first kept');
  },
);

opened('refuses a queue name with control characters (400)', async (ctx) => {
  const broker = await open(ctx);
  const err = await rejects(() => broker.subscribe('orders', () => {}, { queue: 'a\u0001b' }));
  assert.ok(isMicroError(err) && err.code === 400, String(err));
});

opened('keeps every message whose publish resolved when its process is killed (SIGKILL) right after', async (ctx) => {
  // A child process publishes and says which publishes resolved; it is killed in the middle of publishing.
  const script = `
    import { openDurableBroker } from ${JSON.stringify(new URL('../../../serve/broker/durable-broker.ts', import.meta.url).pathname)};
    const broker = await openDurableBroker({ home: process.argv[1] });
    for (let i = 0; ; i++) {
      const p = broker.publish('orders', { body: new TextEncoder().encode('m' + i) });
      if (i % 3 === 0) { await p; process.stdout.write('m' + i + '\\n'); } else p.then(() => process.stdout.write('m' + i + '\\n'));
    }`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, ctx.home], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  const exited = new Promise((r) => child.on('exit', r));
  try {
    await eventually(() => out.split('\n').length > 300, 20_000, '300 publishes resolved');
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  const resolved = out.split('\n').filter(Boolean);
  const broker = await open(ctx);
  const { deliveries, handler } = collector();
  await broker.subscribe('orders', handler, { queue: 'g' });
  await eventually(() => deliveries.length >= resolved.length, 10_000, `the ${resolved.length} resolved`);
  const got = new Set(bodies(deliveries));
  const lost = resolved.filter((b) => !got.has(b));
  assert.equal(lost, [], `${lost.length} of ${resolved.length} resolved publishes lost`);
});

opened.run();
