import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createFileRegistry } from '../../runtime/plugins/local/registry.js';
import { start, tempHome, type Running } from './helpers.js';
import { eventually, sleep, withTimeout } from '../helpers.js';

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
  assert.is((await nodes('helloworld')).length, 1);
  fn.child.kill('SIGTERM');
  assert.is(await fn.exited(), 0);
  assert.equal(await nodes('helloworld'), [], 'deregistered');
});

run('listens where MICRO_SERVER_ADDRESS or --address says', async () => {
  const fn = launch(['examples/helloworld', '--address', '127.0.0.1:0']);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  assert.ok(Number(new URL(address!).port) > 0);
  fn.child.kill('SIGTERM');
  assert.is(await fn.exited(), 0);
});

/** The addresses of `service`'s live nodes in the scratch home's registry. */
async function nodes(service: string): Promise<string[]> {
  const registry = createFileRegistry({ home: scratch.home });
  try {
    return (await registry.getService(service)).flatMap((s) => s.nodes.map((n) => n.address));
  } finally {
    await registry.close?.();
  }
}

const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

run(
  "answers 408 at the caller's Micro-Timeout when the handler never returns, and is gone within the grace: exit 124",
  async () => {
    const fn = launch(['test/fixtures/stuck']);
    const [, address] = await fn.waitFor(LISTENING);
    const res = await post(`${address}/stuck/Stuck.Timer`, {}, { 'Micro-Timeout': '500' });
    const answered = Date.now();
    assert.is(res.status, 408);
    assert.is(((await res.json()) as { code: number }).code, 408);
    assert.is(await fn.exited(10_000), 124);
    // The grace is 1 s; stopping and exiting take a little more. Generous, and far from "never".
    assert.ok(Date.now() - answered < 5000, `gone ${Date.now() - answered} ms after the 408`);
    assert.equal(await nodes('stuck'), [], 'deregistered');
  },
);

run('answers 408 at --timeout when the caller sets no deadline, and exits 124', async () => {
  const fn = launch(['test/fixtures/stuck', '--timeout', '300ms']);
  const [, address] = await fn.waitFor(LISTENING);
  const res = await post(`${address}/stuck/Stuck.Aware`, {});
  assert.is(res.status, 408);
  assert.is(await fn.exited(10_000), 124);
});

run('keeps waiting after each request that never reaches the handler, then serves its one real call', async () => {
  const fn = launch(['examples/helloworld']);
  const [, address] = await fn.waitFor(LISTENING);
  const mucp = (extra: Record<string, string>) => ({
    'Micro-Service': 'helloworld',
    'Micro-Endpoint': 'Greeter.Hello',
    'Content-Type': 'application/json',
    ...extra,
  });
  const raw = (headers: Record<string, string>, body: string) =>
    withTimeout(fetch(`${address}/`, { method: 'POST', headers, body }), 10000);
  const cases: [string, () => Promise<Response>, number][] = [
    ['another service', () => raw(mucp({ 'Micro-Service': 'other' }), '{"name":"Ada"}'), 404],
    ['an unknown endpoint', () => raw(mucp({ 'Micro-Endpoint': 'Greeter.Bye' }), '{"name":"Ada"}'), 404],
    ['an unsupported content type', () => raw(mucp({ 'Content-Type': 'application/xml' }), '<name/>'), 400],
    ['malformed JSON', () => raw(mucp({}), '{"name":'), 400],
  ];
  for (const [what, send, code] of cases) {
    const res = await send();
    assert.is(res.status, code, what);
    assert.is(((await res.json()) as { code: number }).code, code, what);
    assert.is(fn.child.exitCode, null, `still running after ${what}`);
  }
  assert.is((await nodes('helloworld')).length, 1, 'still registered');
  const res = await post(`${address}/helloworld/Greeter.Hello`, { name: 'Ada' });
  assert.equal(await res.json(), { message: 'Hello Ada' });
  assert.is(await fn.exited(), 0);
});

run("on SIGTERM while serving, fires the handler's signal and sends its answer, then exits", async () => {
  const fn = launch(['test/fixtures/stuck']);
  const [, address] = await fn.waitFor(LISTENING);
  const pending = post(`${address}/stuck/Stuck.Aware`, {});
  await sleep(300);
  fn.child.kill('SIGTERM');
  const res = await pending;
  assert.is(res.status, 200);
  assert.equal(await res.json(), { aborted: 503 });
  assert.is(await fn.exited(5000), 0);
  assert.equal(await nodes('stuck'), [], 'deregistered');
});

run('on SIGTERM while serving a handler that ignores its signal, answers 503 after the grace and exits 1', async () => {
  const fn = launch(['test/fixtures/stuck']);
  const [, address] = await fn.waitFor(LISTENING);
  const pending = post(`${address}/stuck/Stuck.Timer`, {});
  await sleep(300);
  fn.child.kill('SIGTERM');
  const res = await pending;
  assert.is(res.status, 503);
  assert.match(((await res.json()) as { detail: string }).detail, /stopped while its handler ran/);
  assert.is(await fn.exited(5000), 1);
  assert.equal(await nodes('stuck'), [], 'deregistered');
});

run("registers with a TTL of seconds: a killed instance's node is gone within 10 s", async () => {
  const fn = launch(['examples/helloworld']);
  const [, address] = await fn.waitFor(LISTENING);
  assert.equal(await nodes('helloworld'), [address]);
  const gone = new Promise((resolve) => fn.child.once('exit', resolve));
  fn.child.kill('SIGKILL');
  await withTimeout(gone, 5000, 'the kill');
  const killed = Date.now();
  await eventually(async () => (await nodes('helloworld')).length === 0, 10_000, 'the node expiring', 200);
  assert.ok(Date.now() - killed <= 10_000);
});

run.run();
