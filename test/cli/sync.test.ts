/**
 * ctx.sync end to end: a real `micro-fn serve`, examples/lock deployed with the CLI, its one-shot processes (confined,
 * another user) taking the lock on serve's store with the token serve gave them (MICRO_SYNC unset: local).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const add = async (hold: number) => {
  const res = await fetch(`${gateway}/lock/Ledger.Add`, {
    method: 'POST',
    body: JSON.stringify({ hold }),
    headers: { 'content-type': 'application/json' },
  });
  const body = (await res.json()) as { value: number; token: number };
  assert.is(res.status, 200, JSON.stringify(body));
  return body;
};

// ---
const lock = suite('examples/lock through micro-fn serve');

lock.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(
    ['serve', '--address', '127.0.0.1:0', '--quiet', '--concurrency', '6', '--queue', '100', '--timeout', '2m'],
    env,
  );
  [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
  const deployed = await cli(['deploy', 'examples/lock'], env, { timeout: 60_000 });
  assert.is(deployed.code, 0, deployed.stderr);
});

lock.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
});

lock('20 concurrent one-shot holders take turns: values 1..20 in token order, 0 compare-and-set lost', async () => {
  const replies = await withTimeout(Promise.all(Array.from({ length: 20 }, () => add(20))), 120_000, '20 invocations');
  replies.sort((a, b) => a.token - b.token);
  assert.equal(
    replies.map((r) => r.value),
    Array.from({ length: 20 }, (_, i) => i + 1),
    'each holder saw the one before it: no two held the lock at once',
  );
});

lock.run();
