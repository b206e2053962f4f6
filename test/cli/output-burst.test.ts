/**
 * A function's output reaches its log whole when the function ends right after a burst of it: its stdout is a socket
 * pair to serve that holds some 200 KB, and what Node held beyond that in the process was dropped at exit (499-512
 * lines of 5,000 kept before serve/bootstrap.cjs made the function's stdout and stderr blocking).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const burst = suite('micro-fn serve: a burst of output just before the function ends');
burst.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--quiet'], env);
  gateway = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  const r = await cli(['deploy', 'test/fixtures/numbered', '--pool', '1'], env, { timeout: 60_000 });
  assert.is(r.code, 0, r.stderr);
});
burst.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
});

const call = (endpoint: string, from: number, count: number) =>
  withTimeout(
    fetch(`${gateway}/numbered/Numbered.${endpoint}`, {
      method: 'POST',
      body: JSON.stringify({ from, count }),
      headers: { 'content-type': 'application/json' },
    }).then((r) => r.status),
    30_000,
    `Numbered.${endpoint}`,
  );

/** The numbers in the function's log file, in order. */
const logged = () =>
  [...readFileSync(join(scratch.home, 'logs', 'numbered.log'), 'utf8').matchAll(/stdout: n=(\d+)$/gm)].map((m) =>
    Number(m[1]),
  );
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

burst('5,000 lines printed just before the reply: all 5,000 logged, once each, in order', async () => {
  assert.is(await call('Print', 1, 5000), 200);
  await eventually(() => logged().at(-1) === 5000, 20_000, 'line 5000 in the log', 50);
  assert.equal(logged(), range(1, 5000));
});

burst('5,000 lines printed just before the process exits (no reply): all 5,000 logged, in order', async () => {
  assert.is(await call('PrintAndExit', 10_001, 5000), 500);
  await eventually(() => logged().at(-1) === 15_000, 20_000, 'line 15000 in the log', 50);
  assert.equal(logged().slice(-5000), range(10_001, 15_000));
});

burst.run();
