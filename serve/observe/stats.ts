/**
 * serve's figures per function (go-micro's debug stats): counts since serve started and durations over the last
 * minutes (window.ts), fed by invocation events; `Runtime.Stats` adds each pool's state and the broker's.
 */
import type { FunctionStats, PoolStats, TopicStats } from '../../runtime/plugins/local/protocol.js';
import type { InvocationEvent } from './event.js';
import { DurationWindow } from './window.js';

interface Counters {
  kind: FunctionStats['kind'];
  invocations: number;
  errors: number;
  coldStarts: number;
  notStarted: number;
  last: number;
  window: DurationWindow;
}

/** A broker that reports what it holds (serve's durable broker). */
export interface BrokerFigures {
  stats(): { topics: TopicStats[]; deadLetters: { topic: string; count: number }[]; messages: number; bytes: number };
}

/** Whether `broker` reports figures (serve's own does; a shared one's server keeps them). */
export function hasFigures(broker: unknown): broker is BrokerFigures {
  return typeof (broker as Partial<BrokerFigures> | undefined)?.stats === 'function';
}

/** The counters of every function that has had an invocation; one per name, kept across redeploys. */
export class StatsCollector {
  readonly #functions = new Map<string, Counters>();

  /** Counts one event; cheap enough for every invocation (a few increments and a logarithm). */
  record(event: InvocationEvent): void {
    let c = this.#functions.get(event.function);
    if (!c) this.#functions.set(event.function, (c = counters(event.kind === 'lambda' ? 'lambda' : 'local')));
    c.last = event.at;
    if (!event.started) {
      c.notStarted++;
      return;
    }
    c.invocations++;
    if (!event.ok) c.errors++;
    if (event.cold) c.coldStarts++;
    c.window.record(event.ms, event.ok, event.at);
  }

  /** Forgets a function taken away. */
  forget(name: string): void {
    this.#functions.delete(name);
  }

  /**
   * The figures of `functions` (every deployed one, named whether or not it was invoked, with its pool state) and of
   * every other function counted here (the Lambda API's), by name.
   */
  snapshot(functions: Iterable<{ name: string; pool?: PoolStats }>, now = Date.now()): FunctionStats[] {
    const out = new Map<string, FunctionStats>();
    const figures = (name: string, c: Counters, pool?: PoolStats): FunctionStats => ({
      name,
      kind: c.kind,
      ...(pool ? { pool } : {}),
      invocations: c.invocations,
      errors: c.errors,
      coldStarts: c.coldStarts,
      notStarted: c.notStarted,
      recent: c.window.summary(now),
      ...(c.last > 0 ? { last: new Date(c.last).toISOString() } : {}),
    });
    for (const { name, pool } of functions) out.set(name, figures(name, this.#functions.get(name) ?? EMPTY, pool));
    for (const [name, c] of this.#functions) if (!out.has(name)) out.set(name, figures(name, c));
    return [...out.values()].sort((a, b) => a.name.localeCompare(b.name));
  }
}

const counters = (kind: FunctionStats['kind']): Counters => ({
  kind,
  invocations: 0,
  errors: 0,
  coldStarts: 0,
  notStarted: 0,
  last: 0,
  window: new DurationWindow(),
});

const EMPTY = counters('local');
