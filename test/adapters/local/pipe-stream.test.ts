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
  'sends an early first message without credit (its reader grants a window with the head), then only as much as granted: 1, then 3 of 10 messages (21 characters)',
  async () => {
    const source = producer(10);
    const credit = new Credit();
    const sent: IpcStream[] = [];
    const done = writeStream(
      source,
      credit,
      async (m) => void sent.push(m),
      (e) => e as MicroError,
      { early: true },
    );
    await turns();
    assert.equal(bodiesOf(sent), ['{"i":0}'], 'a writer with 0 credits sends its first message only');
    assert.is(source.pulled, 1, 'and asks its producer for no more');
    credit.receive({ type: 'credit', n: 21 }); // {"i":0} is 7 characters: 14 are left of the 21
    await turns();
    assert.is(bodiesOf(sent).length, 3, 'a writer granted 21 characters sends 3 messages of 7');
    assert.is(source.pulled, 3, 'its producer made 3');
    credit.receive({ type: 'credit', n: 100 });
    assert.equal(await withTimeout(done, 2000, 'the stream to be written'), { count: 10, cancelled: false });
    assert.equal(sent.at(-1), { type: 'end', trailers: { 'x-count': '10' } });
    assert.equal(
      bodiesOf(sent),
      Array.from({ length: 10 }, (_, i) => `{"i":${i}}`),
    );
  },
);

write('sends nothing without credit unless early: 0 messages, 0 made', async () => {
  const source = producer(10);
  const sent: IpcStream[] = [];
  void writeStream(
    source,
    new Credit(),
    async (m) => void sent.push(m),
    (e) => e as MicroError,
  );
  await turns();
  assert.equal([sent.length, source.pulled], [0, 0]);
});

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
  'a reader that grants 1,000,000 characters and reads nothing holds the writer at 70 characters not yet written, plus the one message that crosses it: 11 messages of 7',
  async () => {
    const source = producer(1000);
    const credit = new Credit();
    credit.receive({ type: 'credit', n: 1_000_000 });
    const sent: IpcStream[] = [];
    const hang = (m: IpcStream) => (sent.push(m), new Promise<void>(() => {}));
    void writeStream(source, credit, hang, (e) => e as MicroError, { flush: 70 });
    await turns(50);
    assert.is(bodiesOf(sent).length, 11, '11 messages of 7 characters sent');
    assert.is(source.pulled, 11, 'and none more made while the pipe does not take them');
    credit.receive({ type: 'cancel' });
  },
);

write(
  'sends what a producer makes back to back in lines of at most 1,000 characters (plus one message): the first alone, 10,000 messages (98,890 characters) in 100 lines',
  async () => {
    const source = producer(10_000);
    const credit = new Credit();
    credit.receive({ type: 'credit', n: 1_000_000 });
    const sent: IpcStream[] = [];
    const result = await withTimeout(
      writeStream(
        source,
        credit,
        async (m) => void sent.push(m),
        (e) => e as MicroError,
        { batch: 1000 },
      ),
      5000,
      'the stream to be written',
    );
    assert.equal(result, { count: 10_000, cancelled: false });
    const data = sent.filter((m) => m.type === 'data');
    assert.equal(data[0], { type: 'data', body: '{"i":0}' }, 'the first message goes at once, alone');
    for (const line of data.slice(1, -1)) {
      const chars = (line.bodies ?? [line.body!]).reduce((n, b) => n + b.length, 0);
      assert.ok(chars >= 1000 && chars < 1000 + 11, `a full line holds 1,000 characters and one message: ${chars}`);
    }
    assert.is(data.length, 100);
    assert.equal(
      bodiesOf(sent),
      Array.from({ length: 10_000 }, (_, i) => `{"i":${i}}`),
    );
  },
);

write('sends each message as it comes from a producer that waits between them: 20 messages, 20 lines', async () => {
  const inner = producer(20);
  const it = inner[Symbol.asyncIterator]();
  const source = {
    end: inner.end,
    [Symbol.asyncIterator]: () => ({
      next: async () => (await new Promise((r) => setImmediate(r)), it.next()),
    }),
  };
  const credit = new Credit();
  credit.receive({ type: 'credit', n: 1_000_000 });
  const sent: IpcStream[] = [];
  await withTimeout(
    writeStream(
      source,
      credit,
      async (m) => void sent.push(m),
      (e) => e as MicroError,
    ),
    5000,
    'the stream to be written',
  );
  assert.is(sent.filter((m) => m.type === 'data').length, 20);
  assert.is(bodiesOf(sent).length, 20);
});

write('sends one message a line with batch 0 (a bundle that takes no batches): 100 messages, 100 lines', async () => {
  const credit = new Credit();
  credit.receive({ type: 'credit', n: 1_000_000 });
  const sent: IpcStream[] = [];
  await writeStream(
    producer(100),
    credit,
    async (m) => void sent.push(m),
    (e) => e as MicroError,
    { batch: 0 },
  );
  const data = sent.filter((m) => m.type === 'data');
  assert.is(data.length, 100);
  assert.ok(data.every((m) => typeof m.body === 'string' && m.bodies === undefined));
});

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

reader("throws a 499 its writer's side ended it with (the caller went), after the 1 message held", async () => {
  const r = new PipeReader(() => {}, 'fn');
  r.push('1');
  r.fail(new MicroError('fn', CANCELLED, 'the caller went away'));
  const it = r[Symbol.asyncIterator]();
  assert.equal(dec.decode((await it.next()).value as Uint8Array), '1');
  try {
    await it.next();
    assert.unreachable('the 499 is thrown');
  } catch (err) {
    assert.is((err as MicroError).code, CANCELLED);
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

reader(
  'takes several messages on one line, in order, each counted against its credit: 10 fit, the 11th fails it',
  async () => {
    const r = new PipeReader(() => {}, 'fn', 100);
    assert.ok(r.receive({ type: 'data', bodies: Array.from({ length: 5 }, (_, i) => ten(i)) }));
    assert.ok(r.receive({ type: 'data', bodies: Array.from({ length: 5 }, (_, i) => ten(5 + i)) }));
    assert.is(r.count, 10);
    assert.is(r.receive({ type: 'data', bodies: [ten(10)] }), false, 'past the 100 characters granted');
    const got: unknown[] = [];
    try {
      for await (const m of r) got.push(JSON.parse(dec.decode(m)));
    } catch (err) {
      assert.match((err as MicroError).detail, /more stream messages than it was granted/);
    }
    assert.equal(
      got,
      Array.from({ length: 10 }, (_, i) => JSON.parse(ten(i))),
    );
  },
);

reader(
  'counts an empty message as 1 character of its credit: 100 fit a window of 100, the 101st fails it',
  async () => {
    const r = new PipeReader(() => {}, 'fn', 100);
    assert.ok(r.receive({ type: 'data', bodies: Array.from({ length: 100 }, () => '') }));
    assert.is(r.push(''), false);
    assert.match((await r.end).error!.detail, /more stream messages than it was granted/);
  },
);

reader(
  'fails the stream, without throwing, on a data line whose messages are not text: 4 lines, 4 failures',
  async () => {
    for (const line of [{}, { body: 1 }, { bodies: ['"a"', 2] }, { bodies: [null] }]) {
      const r = new PipeReader(() => {}, 'fn');
      assert.is(r.receive({ type: 'data', ...line } as IpcStream), false, JSON.stringify(line));
      assert.match((await r.end).error!.detail, /not text/);
    }
  },
);

reader(
  'hands on the exact UTF-8 bytes of short, long, non-ASCII and empty messages, past a slab of 64 KiB',
  async () => {
    const texts = ['"é"', '"😀"', '""', `"${'x'.repeat(300)}"`, '{"a":"ü","b":1}', ''];
    for (let i = 0; i < 8000; i++) texts.push(JSON.stringify({ i, s: i % 7 ? 'ascii' : 'ñ' }));
    const r = new PipeReader(() => {}, 'fn', 10_000_000);
    r.receive({ type: 'data', bodies: texts });
    r.finish({ trailers: {} });
    const got: Uint8Array[] = [];
    for await (const m of r) got.push(m);
    assert.is(got.length, texts.length);
    texts.forEach((t, i) => assert.equal([...got[i]!], [...enc.encode(t)], `message ${i}: ${t}`));
  },
);

reader.run();

/** The messages of the data lines in `sent`, in order. */
function bodiesOf(sent: IpcStream[]): string[] {
  return sent.flatMap((m) => (m.type !== 'data' ? [] : (m.bodies ?? [m.body!])));
}

/** A message of exactly 10 characters: a JSON string of 8 digits. */
function ten(i: number): string {
  return JSON.stringify(String(i).padStart(8, '0'));
}

function sumCredit(grants: (IpcCredit | IpcCancel)[]): number {
  return grants.reduce((n, g) => n + (g.type === 'credit' ? g.n : 0), 0);
}
