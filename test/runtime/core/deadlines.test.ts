import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Deadlines } from '../../../runtime/core/deadlines.js';
import { newId } from '../../../runtime/core/id.js';
import { eventually } from '../../helpers.js';

/** Timers that keep the process alive now (unref'd ones are not listed). */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

// ---
const deadlines = suite('Deadlines');

deadlines('fires each deadline once it has passed, earliest first, and never one that was deleted', async () => {
  const d = new Deadlines();
  const fired: string[] = [];
  const now = Date.now();
  d.add(now + 60, () => fired.push('c'));
  d.add(now + 20, () => fired.push('a'));
  const gone = d.add(now + 30, () => fired.push('deleted'));
  d.add(now + 40, () => fired.push('b'));
  d.delete(gone);
  await eventually(() => fired.length === 3, 2000, 'three deadlines');
  assert.equal(fired, ['a', 'b', 'c']);
  assert.is(d.size, 0);
  d.delete(gone); // twice: nothing happens
  assert.equal(fired, ['a', 'b', 'c']);
});

deadlines('a deadline added while the timer waits for a later one is not missed', async () => {
  const d = new Deadlines();
  const fired: string[] = [];
  const late = d.add(Date.now() + 5000, () => fired.push('late'));
  const first = d.add(Date.now() + 10, () => fired.push('early'));
  await eventually(() => fired.length === 1, 2000, 'the early deadline');
  assert.equal(fired, ['early']);
  d.delete(first);
  assert.is(d.size, 1);
  d.delete(late);
});

deadlines('keeps the process alive only while it watches a deadline: one timer for many', () => {
  const before = timers();
  const d = new Deadlines();
  const entries = Array.from({ length: 50 }, (_, i) => d.add(Date.now() + 10_000 + i, () => {}));
  assert.is(timers() - before, 1, 'one timer for 50 deadlines');
  for (const e of entries) d.delete(e);
  assert.is(timers() - before, 0, 'none once nothing is watched');
  const again = d.add(Date.now() + 10_000, () => {});
  assert.is(timers() - before, 1, 'held again while a deadline is watched');
  d.delete(again);
  assert.is(timers() - before, 0);
});

deadlines('watches nothing further than setTimeout can wait (24.8 days): as good as no deadline', () => {
  const d = new Deadlines();
  assert.is(
    d.add(Date.now() + 30 * 86_400_000, () => {}),
    undefined,
  );
  assert.is(d.size, 0);
});

deadlines.run();

// ---
const id = suite('newId');

id('is a UUID v4, different each time', () => {
  const seen = new Set<string>();
  const variants = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const v = newId();
    assert.match(v, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen.add(v);
    variants.add(v[19]!);
  }
  assert.is(seen.size, 20_000);
  assert.equal([...variants].sort(), ['8', '9', 'a', 'b']);
});

id.run();
