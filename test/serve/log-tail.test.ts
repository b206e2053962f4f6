/**
 * LogTail following LogSink's rotation (numbered files, the oldest past `keep` removed): every line once and in order
 * while the files it needs are kept, and a count of the files removed before it read them. LogSink.close() is the
 * barrier that puts every line written so far on disk (a later write opens the file again).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LogSink } from '../../serve/logs.js';
import { LogTail } from '../../cli/log-tail.js';

let home: string;
let sink: LogSink;
let tail: LogTail;

/** Lines of one length (4-digit numbers), so a file of 4 lines' bytes holds exactly 4 lines. */
const text = (i: number) => `line ${String(i).padStart(4, '0')}`;
const LINE_BYTES = Buffer.byteLength(`${new Date().toISOString()} fn inv stdout: ${text(0)}\n`);
const numbers = (entries: { text: string }[]) => entries.map((e) => Number(/line (\d+)$/.exec(e.text)![1]));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function write(from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i++) sink.write('fn', 'inv', 'stdout', text(i));
  await sink.close();
}

// ---
const follow = suite('LogTail.poll across rotations');

follow.before.each(() => {
  home = mkdtempSync(join(tmpdir(), 'micro-fn-tail-'));
  // 4 lines a file, 2 rotated files kept.
  sink = new LogSink(home, false, () => {}, { maxBytes: 4 * LINE_BYTES, keep: 2 });
  tail = new LogTail(LogSink.folder(home), LogSink.file(home, 'fn'));
});

follow.after.each(async () => {
  tail.close();
  await sink.close();
  rmSync(home, { recursive: true, force: true });
});

follow(
  '3 rotations between two reads with 2 files kept: nothing lost, nothing said (the file it held is read)',
  async () => {
    await write(0, 5); // .1: 0-3; current: 4, 5
    assert.equal(numbers(tail.history()), range(0, 5));
    await write(6, 17); // the file read from (4-7) becomes .2, then .3 (8-11), .4 (12-15); .1 and .2 removed
    assert.equal(numbers(tail.poll()), range(6, 17), 'lines 6 to 17 once, in order');
    assert.equal(tail.rotatedAway(), [], 'no file was removed unread');
  },
);

follow(
  '5 rotations between two reads with 2 kept: 8 lines of 2 files skipped, said once, then it goes on',
  async () => {
    await write(0, 5);
    assert.equal(numbers(tail.history()), range(0, 5));
    await write(6, 25); // 4-7 → .2, 8-11 → .3, 12-15 → .4, 16-19 → .5, 20-23 → .6; .3 and .4 removed unread
    assert.equal(numbers(tail.poll()), [...range(6, 7), ...range(16, 25)], 'lines 8 to 15 missing, the rest once');
    assert.equal(
      tail.rotatedAway().map((a) => a.files),
      [2],
      '2 files rotated away',
    );
    await write(26, 33); // 2 rotations: both files kept
    assert.equal(numbers(tail.poll()), range(26, 33), 'then every line again');
    assert.equal(tail.rotatedAway(), [], 'nothing more missing');
  },
);

follow('a read between every line over 12 rotations: each of 50 lines once, in order, nothing said', async () => {
  await write(0, 0);
  const seen = numbers(tail.history());
  for (let i = 1; i < 50; i++) {
    await write(i, i);
    seen.push(...numbers(tail.poll()));
  }
  assert.equal(seen, range(0, 49));
  assert.equal(tail.rotatedAway(), []);
});

follow.run();
