/**
 * Durations over a recent window in fixed memory: a ring of slots (10 × 30 s: the last 5 minutes), each a
 * log-scale histogram (buckets 10 % apart, from 10 µs to 10 minutes), so p50/p99 are read within ±5 % and
 * recording one costs a logarithm and an increment, whatever the rate.
 */
import type { WindowSummary } from '../../runtime/plugins/local/protocol.js';

/** Slots in the ring and the length of each: the window is their product. */
const SLOTS = 10;
const SLOT_MS = 30_000;
/** The smallest duration told apart (ms) and the ratio of one bucket's bound to the previous one's. */
const MIN_MS = 0.01;
const GROWTH = 1.1;
const LOG_GROWTH = Math.log(GROWTH);
/** Enough buckets to reach 10 minutes: past it, the last one. */
const BUCKETS = Math.ceil(Math.log(600_000 / MIN_MS) / LOG_GROWTH) + 1;

interface Slot {
  /** The start of the 30 s this slot counts (ms since the epoch, a multiple of SLOT_MS); -1 unused. */
  start: number;
  count: number;
  errors: number;
  buckets: Uint32Array;
}

/** The durations of one function's recent invocations. */
export class DurationWindow {
  readonly #slots: Slot[] = Array.from({ length: SLOTS }, () => ({
    start: -1,
    count: 0,
    errors: 0,
    buckets: new Uint32Array(BUCKETS),
  }));

  /** Counts one invocation of `ms` that ended at `at` (ms since the epoch). */
  record(ms: number, ok: boolean, at: number): void {
    const start = at - (at % SLOT_MS);
    const slot = this.#slots[Math.floor(start / SLOT_MS) % SLOTS]!;
    if (slot.start !== start) {
      if (start < slot.start) return; // older than the window (a clock step back): not counted
      slot.start = start;
      slot.count = 0;
      slot.errors = 0;
      slot.buckets.fill(0);
    }
    slot.count++;
    if (!ok) slot.errors++;
    slot.buckets[bucketOf(ms)]!++;
  }

  /** Counts and p50/p99 of the invocations that ended in the window before `now`. */
  summary(now = Date.now()): WindowSummary {
    const oldest = now - (now % SLOT_MS) - (SLOTS - 1) * SLOT_MS;
    const live = this.#slots.filter((s) => s.start >= oldest && s.start <= now);
    const count = live.reduce((n, s) => n + s.count, 0);
    const errors = live.reduce((n, s) => n + s.errors, 0);
    const summary: WindowSummary = { seconds: (SLOTS * SLOT_MS) / 1000, count, errors };
    if (count === 0) return summary;
    const merged = new Uint32Array(BUCKETS);
    for (const slot of live) for (let i = 0; i < BUCKETS; i++) merged[i]! += slot.buckets[i]!;
    summary.p50 = percentile(merged, count, 0.5);
    summary.p99 = percentile(merged, count, 0.99);
    return summary;
  }
}

/** The bucket of a duration: 0 holds everything up to MIN_MS; bucket i holds (MIN·G^(i-1), MIN·G^i]. */
function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
}

/** The duration under which `q` of the counted invocations fall: the geometric middle of the bucket holding it. */
function percentile(buckets: Uint32Array, count: number, q: number): number {
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= rank) {
      const value = i === 0 ? MIN_MS : MIN_MS * GROWTH ** (i - 0.5);
      return Math.round(value * 100) / 100;
    }
  }
  return Math.round(MIN_MS * GROWTH ** (buckets.length - 1) * 100) / 100;
}
