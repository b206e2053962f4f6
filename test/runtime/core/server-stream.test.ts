/** A handler's reply as a MessageStream (runtime/core/server-stream.ts): bytes or text, reads in order. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ReplyStream, readsText } from '../../../runtime/core/server-stream.js';
import { jsonCodec, type Codec } from '../../../runtime/core/codec.js';
import { MicroError } from '../../../runtime/core/errors.js';
import { Metadata } from '../../../runtime/core/metadata.js';

const dec = new TextDecoder();

/** A ReplyStream over a generator of `values`, its first item pulled as the dispatcher does. */
async function replyOf(values: unknown[], codec: Codec = jsonCodec): Promise<ReplyStream> {
  const iterator = (async function* () {
    for (const v of values) yield v;
  })();
  const first = await iterator.next();
  return new ReplyStream({
    iterator,
    first,
    codec,
    trailers: () => new Metadata(),
    toError: (err) => err as MicroError,
    abort: () => {},
    cancelled: () => new MicroError('fn', 499, 'cancelled'),
    finished: () => {},
    released: () => {},
  });
}

const values = [{ i: 0 }, 'é', null, undefined, [1, 2], { s: '😀' }];
const texts = ['{"i":0}', '"é"', 'null', 'null', '[1,2]', '{"s":"😀"}'];

// ---
const reply = suite('ReplyStream');

reply('hands each of 6 values as its JSON text (nextText), the very text next() encodes as bytes', async () => {
  const asText = await replyOf(values);
  assert.ok(readsText(asText));
  const got: string[] = [];
  for (let r = await asText.nextText(); !r.done; r = await asText.nextText()) got.push(r.value);
  assert.equal(got, texts);
  const asBytes = await replyOf(values);
  const bytes: string[] = [];
  for await (const m of asBytes) bytes.push(dec.decode(m));
  assert.equal(bytes, texts);
});

reply('hands the text of another codec as it encodes it', async () => {
  const upper: Codec = {
    contentType: 'application/json',
    encode: (v) => new TextEncoder().encode(JSON.stringify(v).toUpperCase()),
    decode: (b) => JSON.parse(dec.decode(b)),
  };
  const r = await replyOf([{ a: 'b' }], upper);
  assert.equal(await r.nextText(), { done: false, value: '{"A":"B"}' });
});

reply(
  'runs 20 reads asked at once one after another: an iterator whose reads finish out of order still gives 1 to 20 in order',
  async () => {
    let n = 0;
    let calls = 0;
    // Each next() finishes sooner than the one before it, and takes its value only then.
    const iterator: AsyncIterator<unknown> = {
      next: async () => {
        await new Promise((r) => setTimeout(r, 40 - 2 * calls++));
        return n === 20 ? { done: true, value: undefined } : { done: false, value: ++n };
      },
    };
    const r = new ReplyStream({
      iterator,
      first: { done: false, value: 0 },
      codec: jsonCodec,
      trailers: () => new Metadata(),
      toError: (err) => err as MicroError,
      abort: () => {},
      cancelled: () => new MicroError('fn', 499, 'cancelled'),
      finished: () => {},
      released: () => {},
    });
    const reads = await Promise.all(Array.from({ length: 22 }, (_, i) => (i % 2 ? r.next() : r.nextText())));
    assert.equal(
      reads.map((x) => (x.done ? 'end' : typeof x.value === 'string' ? x.value : dec.decode(x.value))),
      [...Array.from({ length: 21 }, (_, i) => String(i)), 'end'],
    );
  },
);

reply.run();
