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

write('sends nothing without credit, then exactly the credit granted: 0, then 3 of 10 messages', async () => {
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
  credit.receive({ type: 'credit', n: 3 });
  await turns();
  assert.is(sent.length, 3, 'a writer granted 3 sends 3');
  assert.is(source.pulled, 3, 'its producer made 3');
  credit.receive({ type: 'credit', n: 100 });
  assert.equal(await withTimeout(done, 2000, 'the stream to be written'), { count: 10, cancelled: false });
  assert.equal(sent.at(-1), { type: 'end', trailers: { 'x-count': '10' } });
  assert.equal(sent[4], { type: 'data', body: '{"i":4}' });
});

write('a cancel returns the producer at once, even while it waits for credit, and sends no end', async () => {
  const source = producer(10);
  const credit = new Credit();
  const sent: IpcStream[] = [];
  credit.receive({ type: 'credit', n: 2 });
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
  `a reader that grants 1,000 and reads nothing holds the writer at ${STREAM_WINDOW} lines not yet written`,
  async () => {
    const source = producer(1000);
    const credit = new Credit();
    credit.receive({ type: 'credit', n: 1000 });
    let sent = 0;
    void writeStream(
      source,
      credit,
      () => (sent++, new Promise<void>(() => {})),
      (e) => e as MicroError,
    );
    await turns(50);
    assert.is(sent, STREAM_WINDOW);
    assert.is(source.pulled, STREAM_WINDOW + 1, 'and one message made, waiting for the pipe');
    credit.receive({ type: 'cancel' });
  },
);

write.run();

// ---
const reader = suite('PipeReader');

reader('grants its window at once, and more only as its reader pulls: never more than the window held', async () => {
  const grants: (IpcCredit | IpcCancel)[] = [];
  const r = new PipeReader((m) => grants.push(m), 'fn');
  assert.equal(grants, [{ type: 'credit', n: STREAM_WINDOW }]);
  for (let i = 0; i < STREAM_WINDOW; i++) assert.ok(r.push(`{"i":${i}}`));
  assert.is(r.push('{"i":99}'), false, `message ${STREAM_WINDOW + 1} without credit breaks the protocol`);
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
  const r = new PipeReader((m) => grants.push(m), 'fn');
  const got: unknown[] = [];
  const reading = (async () => {
    for await (const m of r) got.push(JSON.parse(dec.decode(m)));
  })();
  let sent = 0;
  let granted = STREAM_WINDOW;
  // A writer that keeps to its credit: 100 messages.
  while (sent < 100) {
    while (sent < 100 && sent < granted) assert.ok(r.push(`{"i":${sent++}}`));
    await eventually(() => grants.length > 1 && (granted = sumCredit(grants)) > sent, 2000, 'more credit');
  }
  r.finish({ trailers: { 'x-count': '100' } });
  await withTimeout(reading, 2000, 'the reader to finish');
  assert.equal(
    got,
    Array.from({ length: 100 }, (_, i) => ({ i })),
  );
  assert.ok(grants.slice(1).every((g) => g.type === 'credit' && g.n === STREAM_WINDOW / 2));
  assert.is((await r.end).trailers.get('x-count'), '100');
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

function sumCredit(grants: (IpcCredit | IpcCancel)[]): number {
  return grants.reduce((n, g) => n + (g.type === 'credit' ? g.n : 0), 0);
}
