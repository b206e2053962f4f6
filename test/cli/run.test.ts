import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { start, tempHome, type Running } from './helpers.js';
import { withTimeout } from '../helpers.js';

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  withTimeout(
    fetch(url, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    }),
    10000,
    `POST ${url}`,
  );

// ---
const run = suite('micro-fn run');
let scratch: ReturnType<typeof tempHome>;
const running: Running[] = [];
run.before(() => {
  scratch = tempHome();
});
run.after.each(() => {
  for (const r of running.splice(0)) r.kill();
});
run.after(() => scratch.cleanup());

function launch(args: string[]): Running {
  const r = start(['run', ...args], { MICRO_FN_HOME: scratch.home });
  running.push(r);
  return r;
}

run('serves exactly one request over HTTP, then exits 0', async () => {
  const fn = launch(['examples/helloworld']);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const res = await post(`${address}/helloworld/Greeter.Hello`, { name: 'Ada' });
  assert.is(res.status, 200);
  assert.equal(await res.json(), { message: 'Hello Ada' });
  assert.is(await fn.exited(), 0);
});

run('delivers the whole reply before the process exits', async () => {
  const fn = launch(['test/fixtures/big']);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const size = 8 << 20;
  const res = await post(`${address}/`, { size }, { 'Micro-Service': 'big', 'Micro-Endpoint': 'Big.Get' });
  const body = (await withTimeout(res.json(), 10000, 'reading the body')) as { data: string };
  assert.is(body.data.length, size);
  assert.is(await fn.exited(), 0);
});

run(
  'answers health probes without using up the invocation, and refuses a concurrent second request with 503',
  async () => {
    const fn = launch(['test/fixtures/big']);
    const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    for (let i = 0; i < 3; i++) {
      const health = await withTimeout(fetch(`${address}/health`), 5000);
      assert.is(health.status, 200);
      await health.arrayBuffer();
    }
    const slow = post(`${address}/big/Big.Slow`, { ms: 300 });
    await new Promise((r) => setTimeout(r, 100));
    const second = await post(`${address}/big/Big.Slow`, { ms: 1 });
    assert.is(second.status, 503);
    assert.is(JSON.parse(second.headers.get('micro-error')!).code, 503);
    assert.equal(await (await slow).json(), { slept: 300 });
    assert.is(await fn.exited(), 0);
  },
);

run('exits 1 after answering with the error JSON when the handler fails', async () => {
  const fn = launch(['examples/helloworld']);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  const res = await post(`${address}/helloworld/Greeter.Hello`, {});
  assert.is(res.status, 400);
  assert.equal(await res.json(), { id: 'helloworld', code: 400, detail: 'name is required', status: 'Bad Request' });
  assert.is(await fn.exited(), 1);
});

run('ends cleanly with exit 0 when nothing arrives before --idle-timeout', async () => {
  const fn = launch(['examples/helloworld', '--idle-timeout', '200ms']);
  await fn.waitFor(/listening on/);
  assert.is(await fn.exited(), 0);
  assert.match(fn.stderr(), /no invocation within 200ms/);
});

run('deregisters and exits 0 on SIGTERM while waiting', async () => {
  const fn = launch(['examples/helloworld']);
  await fn.waitFor(/listening on/);
  fn.child.kill('SIGTERM');
  assert.is(await fn.exited(), 0);
});

run('listens where MICRO_SERVER_ADDRESS or --address says', async () => {
  const fn = launch(['examples/helloworld', '--address', '127.0.0.1:0']);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  assert.ok(Number(new URL(address!).port) > 0);
  fn.child.kill('SIGTERM');
  assert.is(await fn.exited(), 0);
});

run.run();
