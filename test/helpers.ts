/** Test helpers: bounded waits (uvu has no per-test timeout) and async assertions. */
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';

/**
 * How much longer than written every bounded wait here may take (MICRO_FN_TEST_WAIT_SCALE, default 3). The bounds
 * only stop a test that would hang: a loaded machine (a CI runner, files run side by side) is slow, not wrong.
 */
export const WAIT_SCALE = Math.max(1, Number(process.env.MICRO_FN_TEST_WAIT_SCALE) || 3);

/** Rejects if `promise` has not settled within `ms` (× WAIT_SCALE); the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms = 5000, what = 'operation'): Promise<T> {
  ms *= WAIT_SCALE;
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

/** Resolves once `check` returns true, polling every `interval` ms; rejects after `ms` (× WAIT_SCALE). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms = 5000,
  what = 'condition',
  interval = 10,
): Promise<void> {
  ms *= WAIT_SCALE;
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A port free on 127.0.0.1 now (for a serve that must come back at the same address). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Reads `reader` until its text holds `needle`; rejects when the stream ends first or after `ms` (then cancels it). */
export async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  needle: string,
  ms: number,
  what: string,
) {
  let text = '';
  const decoder = new TextDecoder();
  const reading = (async () => {
    while (!text.includes(needle)) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`${what}: the stream ended first; it held ${JSON.stringify(text)}`);
      text += decoder.decode(value, { stream: true });
    }
  })();
  await withTimeout(reading, ms, what).catch(async (err) => {
    await reader.cancel().catch(() => {});
    throw err;
  });
  return text;
}
