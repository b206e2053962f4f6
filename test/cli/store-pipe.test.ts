/**
 * A function process's store operations on its pipe to a real `micro-fn serve` (serve/worker.ts, IpcStoreCall): a
 * process that sends more at once than the protocol allows, or leaves their answers unread, is stopped, and serve
 * goes on (test/fixtures/store-flood). That the operations themselves work over the pipe is what every local store
 * test through serve shows (cli/store.test.ts, examples/counter).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const call = (endpoint: string) =>
  fetch(`${gateway}/store-flood/${endpoint}`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(30_000),
  });

// ---
const flood = suite('micro-fn serve: store operations on the pipe');

flood.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--pool', '1'], env);
  const [, address] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  gateway = address!;
  const r = await cli(['deploy', 'test/fixtures/store-flood', '--target', 'local'], env, { timeout: 60_000 });
  assert.is(r.code, 0, r.stderr);
  const c = await cli(['deploy', 'examples/counter', '--target', 'local'], env, { timeout: 60_000 });
  assert.is(c.code, 0, c.stderr);
});

flood.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
});

flood('2,000 store operations sent at once: the process is stopped (a 500), serve answers the next call', async () => {
  const res = await call('Flood.Many');
  assert.is(res.status, 500, await res.text());
  await eventually(
    () =>
      /sent more than 256 store operations at once on its pipe \(fd 3\) and was stopped/.test(
        serve.stdout() + serve.stderr(),
      ),
    5000,
    'the reason in the log',
  );
  const counter = await fetch(`${gateway}/counter/Counter.Increment`, { method: 'POST', body: '{}' });
  assert.is(counter.status, 200);
  assert.is(((await counter.json()) as { value: number }).value, 1);
});

flood(
  '100 answers of 1 MiB left unread (it blocks 10 s): the process is stopped past 64 MiB unread, at once',
  async () => {
    const started = Date.now();
    const res = await call('Flood.Unread');
    assert.is(res.status, 500, await res.text());
    await eventually(
      () =>
        /left more than 67108864 characters of store answers unread in its pipe/.test(serve.stdout() + serve.stderr()),
      5000,
      'the reason in the log',
    );
    // Stopped, not waited for: it would have read them all once it woke (and answered 200) 10 s later.
    assert.ok(Date.now() - started < 9000, `${Date.now() - started} ms`);
    const counter = await fetch(`${gateway}/counter/Counter.Increment`, { method: 'POST', body: '{}' });
    assert.is(((await counter.json()) as { value: number }).value, 2);
  },
);

flood.run();
