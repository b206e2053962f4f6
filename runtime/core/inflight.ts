/**
 * The handlers a dispatcher is running, each bounded by its deadline and by a stop. A handler cannot be killed,
 * only told (its `ctx.signal` fires) and no longer waited for: at its deadline the caller is answered at once, and
 * what the handler still does is left to wind down within a grace that `settle` waits for.
 */
import type {} from './build-constants.js';
import { Deadlines, MAX_DELAY, type Deadline } from './deadlines.js';
import type { MicroError } from './errors.js';

/** What a run's signal is fired through (the handler's context). */
export interface Abortable {
  abort(reason: unknown): void;
}

interface Run {
  readonly ctx: Abortable;
  /** Stops waiting for the handler: the run rejects with `error`, the handler's signal fires with it. */
  cut(error: MicroError): void;
}

/**
 * How many overdue handlers `settle` keeps track of. A one-shot function has one at most; a long-running service
 * whose handlers hang past their deadlines must not keep every one of them alive through this set.
 */
const MAX_OVERDUE = 100;
const ignore = (): void => {};

export class Inflight {
  readonly #runs = new Set<Run>();
  /** Handlers no longer waited for that have not finished yet. */
  readonly #overdue = new Set<Promise<void>>();
  /**
   * The runs' deadlines, on one timer; a timer each where the platform hands the function its invocations (a bundle
   * built so, build-constants.ts, carries no Deadlines: it runs few at once, and every byte loads at start).
   */
  readonly #deadlines = globalThis.__MICRO_FN_NO_LISTENER__ ? undefined : new Deadlines();

  /**
   * Waits for `work` (a handler's promise) until `deadline` (epoch ms; none: no limit); past it, rejects with
   * `expired()` and fires the handler's signal with the same error. `interrupt` may cut it short too.
   */
  bound<T>(ctx: Abortable, work: Promise<T>, deadline: number | undefined, expired: () => MicroError): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let watched: Deadline | ReturnType<typeof setTimeout> | undefined;
      let done = false;
      const finish = (): boolean => {
        if (done) return false;
        done = true;
        if (globalThis.__MICRO_FN_NO_LISTENER__) clearTimeout(watched as ReturnType<typeof setTimeout>);
        else this.#deadlines!.delete(watched as Deadline);
        this.#runs.delete(run);
        return true;
      };
      const run: Run = {
        ctx,
        cut: (error) => {
          if (!finish()) return;
          ctx.abort(error);
          if (this.#overdue.size < MAX_OVERDUE) {
            const left: Promise<void> = work.then(ignore, ignore).finally(() => this.#overdue.delete(left));
            this.#overdue.add(left);
          }
          reject(error);
        },
      };
      this.#runs.add(run);
      if (deadline !== undefined) {
        const expire = () => run.cut(expired());
        if (!globalThis.__MICRO_FN_NO_LISTENER__) watched = this.#deadlines!.add(deadline, expire);
        else if (deadline - Date.now() <= MAX_DELAY) watched = setTimeout(expire, deadline - Date.now());
      }
      work.then(
        (value) => finish() && resolve(value),
        (err: unknown) => finish() && reject(err),
      );
    });
  }

  /**
   * Stops every run: each handler's signal fires with `error` now; a handler still running `grace` ms later is no
   * longer waited for, and its caller gets `error`.
   */
  interrupt(error: MicroError, grace: number): void {
    for (const run of this.#runs) {
      run.ctx.abort(error);
      if (grace <= 0) run.cut(error);
      else setTimeout(() => run.cut(error), grace);
    }
  }

  /** Waits at most `ms` for the handlers no longer waited for (past their deadline, interrupted) to finish. */
  async settle(ms: number): Promise<void> {
    if (this.#overdue.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#overdue),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms)))),
    ]);
    clearTimeout(timer);
  }
}
