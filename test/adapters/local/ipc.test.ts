import { PassThrough } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeMessage, readMessages, type FromFunction } from '../../../adapters/local/ipc.js';

const ipc = suite('spawner message pipe');

ipc('reads each message once, however the chunks split lines and characters', () => {
  const messages: FromFunction[] = [
    {
      type: 'reply',
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({ text: 'a\nb ü \u2028' }),
      metadata: {},
    },
    { type: 'settled', ok: true },
    { type: 'pong' },
  ];
  const bytes = Buffer.from(messages.map(encodeMessage).join(''), 'utf8');
  for (const size of [1, 2, 3, 7, bytes.length]) {
    const stream = new PassThrough();
    const got: FromFunction[] = [];
    readMessages<FromFunction>(stream, (m) => got.push(m));
    for (let i = 0; i < bytes.length; i += size) stream.write(bytes.subarray(i, i + size));
    assert.equal(got, messages, `chunks of ${size} bytes`);
  }
});

ipc(
  'skips a line that is not JSON (a function writing to the pipe itself): 2 of 2 messages read, nothing thrown',
  () => {
    const stream = new PassThrough();
    const got: FromFunction[] = [];
    readMessages<FromFunction>(stream, (m) => got.push(m));
    stream.write(
      `${encodeMessage({ type: 'pong' })}not json\n{"type":\nnull\n42\n${encodeMessage({ type: 'settled', ok: true })}`,
    );
    assert.equal(got, [{ type: 'pong' }, { type: 'settled', ok: true }]);
  },
);

ipc(
  'a line longer than the limit is not kept: onTooLong once, nothing read after it (1 message before, 0 after)',
  () => {
    const stream = new PassThrough();
    const got: FromFunction[] = [];
    const tooLong: number[] = [];
    readMessages<FromFunction>(
      stream,
      (m) => got.push(m),
      (length) => tooLong.push(length),
      1000,
    );
    stream.write(encodeMessage({ type: 'pong' }));
    for (let i = 0; i < 10; i++) stream.write('x'.repeat(300));
    assert.is(tooLong.length, 1, 'told before any newline: the line is not held until one comes');
    stream.write(`\n${encodeMessage({ type: 'settled', ok: true })}`);
    assert.equal(got, [{ type: 'pong' }]);
    assert.is(tooLong.length, 1);
    assert.ok(tooLong[0]! > 1000, `told its length: ${tooLong[0]}`);
  },
);

ipc('a line of exactly the limit is read', () => {
  const stream = new PassThrough();
  const got: FromFunction[] = [];
  const line = encodeMessage({ type: 'reply', status: 200, contentType: 'x', body: '', metadata: {} });
  readMessages<FromFunction>(
    stream,
    (m) => got.push(m),
    () => assert.unreachable('not too long'),
    line.length - 1,
  );
  stream.write(line.slice(0, 10));
  stream.write(line.slice(10));
  assert.is(got.length, 1);
});

ipc(
  "lets the event loop run after a message it was told to 'yield' at, then reads on in order: 12 messages in 2 chunks, a turn after #3 and #7",
  async () => {
    const stream = new PassThrough();
    const got: (number | string)[] = [];
    readMessages<{ type: string; n: number }>(stream, (m) => {
      got.push(m.n);
      if (m.n === 3 || m.n === 7) {
        setImmediate(() => got.push(`turn after ${m.n}`));
        return 'yield';
      }
    });
    const line = (n: number) => `{"type":"data","n":${n}}\n`;
    stream.write(Array.from({ length: 6 }, (_, i) => line(i + 1)).join(''));
    stream.write(Array.from({ length: 6 }, (_, i) => line(i + 7)).join(''));
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    assert.equal(got, [1, 2, 3, 'turn after 3', 4, 5, 6, 7, 'turn after 7', 8, 9, 10, 11, 12]);
  },
);

ipc(
  'keeps the order when it yields twice in one chunk while more chunks come: 30 messages in 3 chunks, a yield at every message of the first',
  async () => {
    const stream = new PassThrough();
    const got: number[] = [];
    readMessages<{ type: string; n: number }>(stream, (m) => {
      got.push(m.n);
      if (m.n <= 10) return 'yield';
    });
    const chunk = (from: number) => Array.from({ length: 10 }, (_, i) => `{"type":"data","n":${from + i}}\n`).join('');
    stream.write(chunk(1));
    stream.write(chunk(11));
    stream.write(chunk(21));
    for (let i = 0; i < 40; i++) await new Promise((r) => setImmediate(r));
    assert.equal(
      got,
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
  },
);

ipc.run();
