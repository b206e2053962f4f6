/** SpanBatch: bounded, drops the oldest, counts every span once, never waits on the collector. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SpanBatch, batchSettings } from '../../../../runtime/plugins/otel/batch.js';

/** A collector whose exports settle when the test says. */
function collector() {
  const batches: { items: number[]; settle(ok: boolean): void }[] = [];
  const send = (items: number[]) =>
    new Promise<void>((resolve, reject) =>
      batches.push({ items, settle: (ok) => (ok ? resolve() : reject(new Error('collector down'))) }),
    );
  return { batches, send };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

// ---
const batch = suite('SpanBatch');

batch(
  'a full queue drops its oldest span for each new one: 10 pushed into 4 while an export hangs → 6 dropped',
  async () => {
    const c = collector();
    const b = new SpanBatch<number>({ send: c.send, maxQueue: 4, maxBatch: 1, delay: 1 });
    b.push(0); // goes at once (a batch of 1) and hangs
    for (let i = 1; i <= 10; i++) b.push(i);
    assert.equal(b.counts, { exported: 0, dropped: 6, queued: 4 });
    c.batches[0]!.settle(true);
    for (let i = 0; i < 20 && c.batches.length < 5; i++) {
      await tick();
      c.batches.at(-1)!.settle(true);
    }
    await tick();
    assert.equal(
      c.batches.map((x) => x.items[0]),
      [0, 7, 8, 9, 10],
      'the newest four went, in order',
    );
    assert.equal(b.counts, { exported: 5, dropped: 6, queued: 0 });
  },
);

batch('a failed export counts its spans dropped and says so once per failure', async () => {
  const c = collector();
  const failures: number[] = [];
  const b = new SpanBatch<number>({
    send: c.send,
    maxQueue: 8,
    maxBatch: 3,
    delay: 1,
    onFailure: (n) => failures.push(n),
  });
  for (let i = 0; i < 3; i++) b.push(i);
  c.batches[0]!.settle(false);
  await tick();
  assert.equal(failures, [3]);
  assert.equal(b.counts, { exported: 0, dropped: 3, queued: 0 });
});

batch('flush gives up after its bound: what waits and what hangs are dropped, counted once (5 of 5)', async () => {
  const c = collector();
  const b = new SpanBatch<number>({ send: c.send, maxQueue: 8, maxBatch: 2, delay: 1000 });
  for (let i = 0; i < 5; i++) b.push(i); // 2 go at once and hang, 3 wait
  const counts = await b.flush(30);
  assert.equal(counts, { exported: 0, dropped: 5, queued: 0 });
  c.batches[0]!.settle(true); // too late: not counted again
  await tick();
  assert.equal(b.counts, { exported: 0, dropped: 5, queued: 0 });
});

batch('flush sends what waits before its bound: 3 of 3 exported', async () => {
  const b = new SpanBatch<number>({ send: async () => {}, maxQueue: 8, maxBatch: 2, delay: 10000 });
  for (let i = 0; i < 3; i++) b.push(i);
  assert.equal(await b.flush(1000), { exported: 3, dropped: 0, queued: 0 });
});

batch('a send that throws is a failed export, never an exception out of push', () => {
  const b = new SpanBatch<number>({
    send: () => {
      throw new Error('boom');
    },
    maxQueue: 2,
    maxBatch: 1,
    delay: 1,
  });
  b.push(1);
  return tick().then(() => assert.equal(b.counts, { exported: 0, dropped: 1, queued: 0 }));
});

batch.run();

// ---
const settings = suite('batchSettings');

settings('reads OTEL_BSP_*, keeps a batch within the queue, and ignores what is not a positive integer', () => {
  assert.equal(batchSettings({}), { maxQueue: 2048, maxBatch: 512, delay: 200, timeout: 10000 });
  assert.equal(
    batchSettings({
      OTEL_BSP_MAX_QUEUE_SIZE: '4',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10',
      OTEL_BSP_SCHEDULE_DELAY: '-1',
      OTEL_BSP_EXPORT_TIMEOUT: 'x',
    }),
    { maxQueue: 4, maxBatch: 4, delay: 200, timeout: 10000 },
  );
});

settings.run();
