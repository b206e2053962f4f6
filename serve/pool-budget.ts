/**
 * The memory serve lets warm processes take beyond their pools' floors (`--pool N`), shared by every function's pool:
 * a pool that sees calls come faster than it can replace the processes they use keeps more of them warm
 * (serve/pool.ts), each reserving its function's memory limit (`--memory`, what the process may reach before it is
 * stopped) here for as long as the pool keeps it. When the budget is spent, pools stop growing: their floors are not
 * counted in it and always kept.
 */
import { totalmem } from 'node:os';

/** The share of the machine's memory warm processes beyond the floors may take unless serve is told otherwise. */
export const POOL_MEMORY_SHARE = 0.25;

/**
 * MiB of memory for warm processes beyond the pools' floors.
 * @example
 * const budget = new PoolBudget(defaultPoolMemory()); // a quarter of the machine's memory
 * if (budget.take(256)) keepOneMore(); // released with budget.give(256)
 */
export class PoolBudget {
  /** MiB in all; 0: pools never grow beyond their floors. */
  readonly total: number;
  #used = 0;

  constructor(total: number) {
    if (!(total >= 0)) throw new RangeError(`PoolBudget: a size in MiB of at least 0, not ${total}`);
    this.total = total;
  }

  /** MiB reserved now. */
  get used(): number {
    return this.#used;
  }

  /** Reserves `mib` when they are left; false, and nothing reserved, when they are not. */
  take(mib: number): boolean {
    if (this.#used + mib > this.total) return false;
    this.#used += mib;
    return true;
  }

  /** Gives back `mib` reserved before. */
  give(mib: number): void {
    this.#used = Math.max(0, this.#used - mib);
  }
}

/** A quarter of the machine's memory, in MiB. */
export function defaultPoolMemory(): number {
  return Math.floor((totalmem() / 1048576) * POOL_MEMORY_SHARE);
}
