/**
 * One timer for many deadlines: what the dispatcher (a handler's deadline) and a transport (a call's) arm on every
 * request. A timer of its own per request costs a timer list insert and removal each time, and nearly every request
 * ends well before its deadline; here a request costs a Set entry, and the timer is re-armed only for a deadline
 * earlier than the one it waits for.
 */

/** A deadline being watched; give it back to `delete` once what it bounds has ended. */
export interface Deadline {
  readonly at: number;
  readonly fire: () => void;
}

/** setTimeout's largest delay; a deadline further away than this (24.8 days) is as good as none. */
export const MAX_DELAY = 2 ** 31 - 1;

type Timer = ReturnType<typeof setTimeout> & { ref?: () => unknown; unref?: () => unknown };

export class Deadlines {
  readonly #entries = new Set<Deadline>();
  #timer: Timer | undefined;
  /** When the timer fires (epoch ms); Infinity when there is none. */
  #at = Infinity;
  /** Whether the timer keeps the process alive: only while it watches a deadline. */
  #refed = false;

  /** Deadlines watched now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Calls `fire` once `at` (epoch ms) has passed, unless the entry is deleted first. Undefined (nothing is watched)
   * for a deadline further than MAX_DELAY away.
   */
  add(at: number, fire: () => void): Deadline | undefined {
    if (at - Date.now() > MAX_DELAY) return undefined;
    const entry: Deadline = { at, fire };
    this.#entries.add(entry);
    if (at < this.#at) this.#arm(at);
    else if (!this.#refed) {
      this.#timer?.ref?.();
      this.#refed = true;
    }
    return entry;
  }

  /** Stops watching `entry`; the timer no longer keeps the process alive once nothing is watched. */
  delete(entry: Deadline | undefined): void {
    if (!entry || !this.#entries.delete(entry) || this.#entries.size > 0) return;
    // Left armed (the next request most likely needs it again), yet it must not hold a process that is done: where
    // timers cannot be unref'd (Workers and Deno return numbers) it goes.
    const timer = this.#timer;
    if (timer?.unref) {
      timer.unref();
      this.#refed = false;
    } else this.#clear();
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#at = at;
    this.#refed = true;
    this.#timer = setTimeout(this.#fire, Math.max(0, at - Date.now())) as Timer;
  }

  #clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
    this.#refed = false;
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#at = Infinity;
    this.#refed = false;
    const now = Date.now();
    let next = Infinity;
    for (const entry of this.#entries) {
      if (entry.at <= now) {
        this.#entries.delete(entry);
        entry.fire();
      } else if (entry.at < next) next = entry.at;
    }
    if (next < this.#at) this.#arm(next);
  };
}
