/** readAll (runtime/plugins/http/read-all.ts): a whole Web stream body, bounded; past the bound, the linger. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readAll } from '../../../../runtime/plugins/http/read-all.js';

const CHUNK = 64 * 1024;

/** A body of `chunks` chunks of 64 KiB; counts the chunks pulled and whether it was cancelled. */
function body(chunks: number) {
  const seen = { made: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (seen.made === chunks) return controller.close();
      seen.made++;
      controller.enqueue(new Uint8Array(CHUNK).fill(0x20));
    },
    cancel() {
      seen.cancelled = true;
    },
  });
  return { reader: stream.getReader(), seen };
}

const read = suite('readAll');

read('a body within its bound comes whole: 4 chunks of 64 KiB as one array of 256 KiB', async () => {
  const { reader } = body(4);
  assert.is((await readAll(reader, 4 * CHUNK))?.byteLength, 4 * CHUNK);
});

read(
  'past its bound without a linger: undefined, and the rest is cancelled at once (2 of 100 chunks read)',
  async () => {
    const { reader, seen } = body(100);
    assert.is(await readAll(reader, CHUNK), undefined);
    assert.ok(seen.cancelled);
    assert.ok(seen.made <= 3, `${seen.made} chunks made`);
  },
);

read(
  'past its bound with a linger of 512 KiB: the rest of a 1 MiB body is read to its end, nothing cancelled',
  async () => {
    const { reader, seen } = body(16);
    assert.is(await readAll(reader, 8 * CHUNK - 1, 9 * CHUNK), undefined);
    assert.is(seen.made, 16);
    assert.not.ok(seen.cancelled);
  },
);

read('past its bound and its linger (an endless body): 8 more chunks read and dropped, then cancelled', async () => {
  const { reader, seen } = body(Infinity);
  assert.is(await readAll(reader, CHUNK, 8 * CHUNK), undefined);
  assert.ok(seen.cancelled);
  assert.ok(seen.made >= 10 && seen.made <= 12, `${seen.made} chunks made`);
});

read.run();
