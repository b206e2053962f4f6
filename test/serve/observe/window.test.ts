import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DurationWindow } from '../../../serve/observe/window.js';

// ---
const window = suite('DurationWindow');

window('reads p50 and p99 of 1..1000 ms within 5 %, and counts errors', () => {
  const w = new DurationWindow();
  const now = 1_700_000_000_000;
  for (let ms = 1; ms <= 1000; ms++) w.record(ms, ms % 10 !== 0, now);
  const s = w.summary(now);
  assert.equal([s.seconds, s.count, s.errors], [300, 1000, 100]);
  assert.ok(Math.abs(s.p50! - 500) <= 25, `p50 ${s.p50}`);
  assert.ok(Math.abs(s.p99! - 990) <= 50, `p99 ${s.p99}`);
});

window('forgets what ended more than 5 minutes ago, in the same fixed memory', () => {
  const w = new DurationWindow();
  const start = 1_700_000_000_000;
  for (let minute = 0; minute < 60; minute++) w.record(1000, false, start + minute * 60_000);
  w.record(2, true, start + 60 * 60_000);
  const s = w.summary(start + 60 * 60_000);
  assert.equal([s.count, s.errors], [5, 4], 'the last 4 slow failures within 5 minutes, and the fast success');
  assert.ok(Math.abs(s.p99! - 1000) <= 50, `p99 ${s.p99}`);
  assert.equal(new DurationWindow().summary(start), { seconds: 300, count: 0, errors: 0 });
});

window.run();
