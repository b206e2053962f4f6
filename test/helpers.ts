/** Test helpers: bounded waits (uvu has no per-test timeout) and async assertions. */
import * as assert from 'uvu/assert';

/** Rejects if `promise` has not settled within `ms`; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms = 5000, what = 'operation'): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    timer.unref?.();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Asserts that `fn` rejects; returns the rejection for further checks. */
export async function rejects(fn: () => Promise<unknown>, message = 'expected a rejection'): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.unreachable(message);
  return undefined;
}

/** Resolves once `check` returns true, polling every `interval` ms; rejects after `ms`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
  what = 'condition',
  interval = 10,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
