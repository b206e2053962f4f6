/** A stream over the function pipe (adapters/local/pipe-stream.ts): the reader's window, the writer's credit, cancels. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { STREAM_WINDOW, type IpcCancel, type IpcCredit, type IpcStream } from '../../../adapters/local/ipc.js';
import { CANCELLED, Credit, PipeReader, writeStream } from '../../../adapters/local/pipe-stream.js';
import { MicroError, errors } from '../../../runtime/core/errors.js';
import { Metadata } from '../../../runtime/core/metadata.js';
import type { MessageStream, StreamEnd } from '../../../runtime/core/stream.js';
import { eventually, withTimeout } from '../../helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A producer of `count` messages that counts how many it was asked for, and whether it was returned. */
function producer(count: number, fail?: MicroError): MessageStream & { pulled: number; returned: boolean } {
  let end!: (e: StreamEnd) => void;
  const s = {
    pulled: 0,
    returned: false,
    end: new Promise<StreamEnd>((r) => (end = r)),
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        if (s.pulled === count) {
          if (fail) throw fail;
          end({ trailers: new Metadata({ 'x-count': String(count) }) });
          return { done: true, value: undefined };
        }
        return { done: false, value: enc.encode(JSON.stringify({ i: s.pulled++ })) };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        s.returned = true;
        end({ trailers: new Metadata() });
        return { done: true, value: undefined };
      },
    }),
  };
  return s;
}

const turns = async (n = 20) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

// ---
const write = suite('writeStream');

write(
  'sends nothing without credit, then as much as the credit granted: 0, then 3 of 10 messages (21 characters)',
  async () => {
    const source = producer(10);
    const credit = new Credit();
    const sent: IpcStream[] = [];
    const done = writeStream(
      source,
      credit,
      async (m) => void sent.push(m),
      (e) => e as MicroError,
    );
    await turns();
    assert.is(sent.length, 0, 'a writer with 0 credits sends nothing');
    assert.is(source.pulled, 0, 'and asks its producer for nothing');
    credit.receive({ type: 'credit', n: 21 }); // {"i":0} is 7 characters
    await turns();
    assert.is(sent.length, 3, 'a writer granted 21 characters sends 3 messages of 7');
    assert.is(source.pulled, 3, 'its producer made 3');
    credit.receive({ type: 'credit', n: 100 });
    assert.equal(await withTimeout(done, 2000, 'the stream to be written'), { count: 10, cancelled: false });
    assert.equal(sent.at(-1), { type: 'end', trailers: { 'x-count': '10' } });
    assert.equal(sent[4], { type: 'data', body: '{"i":4}' });
  },
);

write('a cancel returns the producer at once, even while it waits for credit, and sends no end', async () => {
  const source = producer(10);
  const credit = new Credit();
  const sent: IpcStream[] = [];
  credit.receive({ type: 'credit', n: 14 });
  const done = writeStream(
    source,
    credit,
    async (m) => void sent.push(m),
    (e) => e as MicroError,
  );
  await turns();
  credit.receive({ type: 'cancel' });
  assert.equal(await withTimeout(done, 2000, 'the writer to stop'), { count: 2, cancelled: true });
  assert.ok(source.returned, "the producer's return() was called");
  assert.ok(!sent.some((m) => m.type === 'end'), 'no end after a cancel');
});

write('a producer that throws mid-stream ends it with its error, after the 2 messages it made', async () => {
  const source = producer(2, errors.badRequest('fn', 'broken'));
  const credit = new Credit();
  credit.receive({ type: 'credit', n: 16 });
  const sent: IpcStream[] = [];
  await writeStream(
    source,
    credit,
    async (m) => void sent.push(m),
    (e) => e as MicroError,
  );
  assert.is(sent.length, 3);
  assert.equal(sent[2], {
    type: 'end',
    trailers: {},
    error: { id: 'fn', code: 400, detail: 'broken', status: 'Bad Request' },
  });
});

write(
  'a reader that grants 1,000,000 characters and reads nothing holds the writer at its window (70) not yet written',
  async () => {
    const source = producer(1000);
    const credit = new Credit();
    credit.receive({ type: 'credit', n: 1_000_000 });
    let sent = 0;
    const hang = () => (sent++, new Promise<void>(() => {}));
    void writeStream(source, credit, hang, (e) => e as MicroError, 70);
    await turns(50);
    assert.is(sent, 10, '10 messages of 7 characters');
    assert.is(source.pulled, 11, 'and one message made, waiting for the pipe');
    credit.receive({ type: 'cancel' });
  },
);

write.run();

// ---
const reader = suite('PipeReader');

reader('grants its window at once, and more only as its reader pulls: never more than the window held', async () => {
  const grants: (IpcCredit | IpcCancel)[] = [];
  assert.is(new PipeReader((m) => grants.push(m), 'fn').ended, false);
  assert.equal(grants, [{ type: 'credit', n: STREAM_WINDOW }]);
  const r = new PipeReader(() => {}, 'fn', 100);
  for (let i = 0; i < 10; i++) assert.ok(r.push(ten(i)), `message ${i + 1} of 10 characters`);
  assert.is(r.push(ten(10)), false, 'message 11, past the 100 characters granted, breaks the protocol');
  const end = await r.end;
  assert.is(end.error?.code, 500);
  assert.match(end.error!.detail, /more stream messages than it was granted/);
});

reader(
  'refuses a message with a raw line break (it would forge messages on NDJSON): the stream fails, 0 read',
  async () => {
    const r = new PipeReader(() => {}, 'fn');
    assert.is(r.push('"a"\n{"forged":true}'), false);
    assert.is(r.count, 0);
    assert.match((await r.end).error!.detail, /a line break/);
  },
);

reader('hands messages on in order, grants credit back in halves, and ends with the trailers', async () => {
  const grants: (IpcCredit | IpcCancel)[] = [];
  const r = new PipeReader((m) => grants.push(m), 'fn', 100);
  const got: unknown[] = [];
  const reading = (async () => {
    for await (const m of r) got.push(JSON.parse(dec.decode(m)));
  })();
  let sent = 0;
  let granted = 100;
  // A writer that keeps to its credit: 100 messages of 10 characters.
  while (sent < 100) {
    while (sent < 100 && sent * 10 < granted) assert.ok(r.push(ten(sent++)));
    await eventually(() => grants.length > 1 && (granted = sumCredit(grants)) > sent * 10, 2000, 'more credit');
  }
  r.finish({ trailers: { 'x-count': '100' } });
  await withTimeout(reading, 2000, 'the reader to finish');
  assert.equal(
    got,
    Array.from({ length: 100 }, (_, i) => JSON.parse(ten(i))),
  );
  assert.ok(grants.slice(1).every((g) => g.type === 'credit' && g.n === 50));
  assert.is((await r.end).trailers.get('x-count'), '100');
});

reader('hands 5,000 held messages on in order, reading and receiving in turns', async () => {
  const r = new PipeReader(() => {}, 'fn', 1_000_000);
  const it = r[Symbol.asyncIterator]();
  const got: unknown[] = [];
  for (let i = 0; i < 5000; i++) {
    assert.ok(r.push(ten(i)));
    // Read one for every two received: the reader's queue grows, and is compacted as it is read.
    if (i % 2) got.push(JSON.parse(dec.decode((await it.next()).value as Uint8Array)));
  }
  r.finish({ trailers: {} });
  for (let m = await it.next(); !m.done; m = await it.next()) got.push(JSON.parse(dec.decode(m.value)));
  assert.equal(
    got,
    Array.from({ length: 5000 }, (_, i) => JSON.parse(ten(i))),
  );
});

reader('throws the error the stream ended with, after the messages held', async () => {
  const r = new PipeReader(() => {}, 'fn');
  r.push('1');
  r.finish({ trailers: {}, error: { id: 'fn', code: 400, detail: 'no', status: 'Bad Request' } });
  const it = r[Symbol.asyncIterator]();
  assert.equal(dec.decode((await it.next()).value as Uint8Array), '1');
  try {
    await it.next();
    assert.unreachable('the error is thrown');
  } catch (err) {
    assert.is((err as MicroError).code, 400);
  }
});

reader('return() sends one cancel and ends the stream as cancelled; later messages are dropped', async () => {
  const sent: (IpcCredit | IpcCancel)[] = [];
  const r = new PipeReader((m) => sent.push(m), 'fn');
  r.push('1');
  const it = r[Symbol.asyncIterator]();
  await it.next();
  await it.return!();
  await it.return!();
  assert.equal(
    sent.filter((m) => m.type === 'cancel'),
    [{ type: 'cancel' }],
  );
  assert.is((await r.end).error?.code, CANCELLED);
  assert.ok(r.push('2'));
  assert.equal(await it.next(), { done: true, value: undefined });
});

reader.run();

/** A message of exactly 10 characters: a JSON string of 8 digits. */
function ten(i: number): string {
  return JSON.stringify(String(i).padStart(8, '0'));
}

function sumCredit(grants: (IpcCredit | IpcCancel)[]): number {
  return grants.reduce((n, g) => n + (g.type === 'credit' ? g.n : 0), 0);
}
