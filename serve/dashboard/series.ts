/**
 * What the dashboard's charts draw: per function, invocations, errors and p50/p99 duration in 5-second steps over
 * the last 5 minutes, from the invocation events. Fixed memory per function (60 steps, at most 128 durations each),
 * whatever the rate: past 128 in a step, a duration replaces a random one kept (a reservoir sample).
 */
import type { InvocationEvent } from '../observe/event.js';

/** The length of one step and how many are kept. */
export const STEP_MS = 5_000;
export const STEPS = 60;
const SAMPLES = 128;

interface Step {
  start: number;
  count: number;
  errors: number;
  durations: number[];
}

/** One function's steps, oldest first: when each began (ms since the epoch), and its figures. */
export interface FunctionSeries {
  name: string;
  step: number;
  points: { t: number; count: number; errors: number; p50?: number; p99?: number }[];
}

/** Functions whose series are kept at most (the Lambda API may see many names): past it the quietest goes. */
const FUNCTIONS = 100;

export class Series {
  readonly #functions = new Map<string, { steps: Step[]; last: number }>();

  /** Counts one invocation (calls dropped before they started are not charted: they ran nothing). */
  record(event: InvocationEvent): void {
    if (!event.started) return;
    let f = this.#functions.get(event.function);
    if (!f) {
      if (this.#functions.size >= FUNCTIONS) this.#forgetQuietest();
      this.#functions.set(event.function, (f = { steps: [], last: 0 }));
    }
    f.last = event.at;
    const start = event.at - (event.at % STEP_MS);
    const slot = Math.floor(start / STEP_MS) % STEPS;
    let step = f.steps[slot];
    if (!step || step.start !== start) {
      if (step && start < step.start) return; // older than the window
      f.steps[slot] = step = { start, count: 0, errors: 0, durations: [] };
    }
    step.count++;
    if (!event.ok) step.errors++;
    if (step.durations.length < SAMPLES) step.durations.push(event.ms);
    else {
      const i = Math.floor(Math.random() * step.count);
      if (i < SAMPLES) step.durations[i] = event.ms;
    }
  }

  /** Every function's points over the window before `now`, steps without invocations included as zeros. */
  snapshot(now = Date.now()): FunctionSeries[] {
    const first = now - (now % STEP_MS) - (STEPS - 1) * STEP_MS;
    return [...this.#functions]
      .map(([name, f]) => {
        const points: FunctionSeries['points'] = [];
        for (let t = first; t <= now; t += STEP_MS) {
          const step = f.steps[Math.floor(t / STEP_MS) % STEPS];
          if (!step || step.start !== t) {
            points.push({ t, count: 0, errors: 0 });
            continue;
          }
          const sorted = [...step.durations].sort((a, b) => a - b);
          points.push({
            t,
            count: step.count,
            errors: step.errors,
            p50: round(quantile(sorted, 0.5)),
            p99: round(quantile(sorted, 0.99)),
          });
        }
        return { name, step: STEP_MS, points };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Forgets a function taken away. */
  forget(name: string): void {
    this.#functions.delete(name);
  }

  #forgetQuietest(): void {
    let quietest: string | undefined;
    let last = Infinity;
    for (const [name, f] of this.#functions) if (f.last < last) [quietest, last] = [name, f.last];
    if (quietest !== undefined) this.#functions.delete(quietest);
  }
}

const quantile = (sorted: number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

const round = (ms: number): number => Math.round(ms * 100) / 100;
