/**
 * Streams over WebSocket end to end: Node's own WebSocket client (test/fixtures/ws-client) against a real
 * `micro-fn run examples/stream` and through a real `micro-fn serve` (its gateway, the pool, the pipe).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';
import { WsClient, type WsEvent } from '../fixtures/ws-client/session.js';
import { RawWs } from '../fixtures/ws-client/raw.js';

const clients: WsClient[] = [];
const raws: RawWs[] = [];
const running: Running[] = [];

function client(url: string): WsClient {
  const c = new WsClient(url);
  clients.push(c);
  return c;
}

async function raw(address: string, path: string): Promise<RawWs> {
  const r = await RawWs.open(address, path);
  raws.push(r);
  return r;
}

function cleanup(): void {
  for (const c of clients.splice(0)) c.stop();
  for (const r of raws.splice(0)) r.destroy();
  for (const r of running.splice(0)) r.kill();
}

const control = (e: WsEvent | undefined) => (e && 'control' in e ? e.control : undefined);
const texts = (events: WsEvent[]) => events.flatMap((e) => ('text' in e ? [JSON.parse(e.text) as unknown] : []));
const closeOf = (events: WsEvent[]) => events.find((e): e is Extract<WsEvent, { close: unknown }> => 'close' in e);
const ws = (address: string) => address.replace('http://', 'ws://');

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// ---
const run = suite('micro-fn run: streams over WebSocket');
let scratch: ReturnType<typeof tempHome>;
run.before(() => {
  scratch = tempHome();
});
run.after.each(cleanup);
run.after(() => scratch.cleanup());

async function launch(): Promise<{ fn: Running; address: string }> {
  const fn = start(['run', 'examples/stream'], { MICRO_FN_HOME: scratch.home });
  running.push(fn);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return { fn, address: address! };
}

run('echoes a bidi stream (Chat.Echo, 3 messages), then the instance exits 0', async () => {
  const { fn, address } = await launch();
  const c = client(`${ws(address)}/stream/Chat.Echo`);
  assert.equal(await c.next(), { open: true });
  c.messages('a', { b: 1 }, 3);
  c.send({ end: true });
  const events = await c.rest();
  assert.ok(control(events[0])?.metadata, 'metadata first');
  assert.equal(texts(events), [{ echo: 'a' }, { echo: { b: 1 } }, { echo: 3 }]);
  assert.equal(control(events.at(-2)), { end: true, trailers: {} });
  assert.is(closeOf(events)?.close.code, 1000);
  assert.is(await withTimeout(fn.exited(), 20_000, 'the run process to exit'), 0);
});

run('a second WebSocket gets the retryable 503 before any 101 while the first runs', async () => {
  const { fn, address } = await launch();
  const c = client(`${ws(address)}/stream/Numbers.Sum`);
  await c.next();
  c.messages(1, 2);
  const second = await raw(address, '/stream/Numbers.Sum');
  assert.is(second.status, 503);
  assert.is((JSON.parse(second.body) as { id: string }).id, 'micro-fn.not-started');
  c.messages(3);
  c.send({ end: true });
  const events = await c.rest();
  assert.equal(texts(events), [{ sum: 6, count: 3 }]);
  assert.is(await withTimeout(fn.exited(), 20_000, 'the run process to exit'), 0);
});

run('a client that closes mid-countdown cancels it: the instance ends at once', async () => {
  const { fn, address } = await launch();
  const c = client(`${ws(address)}/stream/Countdown.Count`);
  await c.next();
  c.messages({ from: 3, delay: 60_000 });
  c.send({ end: true });
  await c.next('metadata');
  assert.equal(await c.next('the first item'), { text: '{"n":3}' });
  c.send({ close: 1000 });
  // Cancelled (499), so not ok: exit 1, well before the 60 s sleep.
  assert.is(await withTimeout(fn.exited(), 20_000, 'the run process to exit'), 1);
});

run.run();

// ---
const serve = suite('micro-fn serve: streams over WebSocket through the gateway and the pipe');
let home: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let server: Running;
let gateway = '';

serve.before(async () => {
  home = tempHome();
  env = { MICRO_FN_HOME: home.home };
  server = start(['serve', '--address', '127.0.0.1:0', '--pool', '1'], env);
  const [, address] = await server.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  gateway = address!;
  for (const folder of ['examples/stream', 'test/fixtures/streams']) {
    const r = await cli(['deploy', folder, '--target', 'local'], env, { timeout: 60_000 });
    assert.is(r.code, 0, r.stderr);
  }
});
serve.after.each(() => {
  for (const c of clients.splice(0)) c.stop();
  for (const r of raws.splice(0)) r.destroy();
});
serve.after(async () => {
  server.kill();
  await server.exited().catch(() => {});
  home.cleanup();
});

serve('echoes Chat.Echo over WebSocket (100 messages, in order)', async () => {
  const c = client(`${ws(gateway)}/stream/Chat.Echo`);
  await c.next();
  const values = Array.from({ length: 100 }, (_, i) => i);
  c.messages(...values);
  c.send({ end: true });
  const events = await c.rest();
  assert.equal(
    texts(events),
    values.map((v) => ({ echo: v })),
  );
  assert.equal(control(events.at(-2)), { end: true, trailers: {} });
});

serve(
  'sums Numbers.Sum (a client stream of 1,000) and streams a countdown with its metadata and trailers',
  async () => {
    const c = client(`${ws(gateway)}/stream/Numbers.Sum`);
    await c.next();
    c.messages(...Array.from({ length: 1000 }, (_, i) => i + 1));
    c.send({ end: true });
    assert.equal(texts(await c.rest()), [{ sum: 500500, count: 1000 }]);
    const d = client(`${ws(gateway)}/stream/Countdown.Count`);
    await d.next();
    d.messages({ from: 2, delay: 1 });
    d.send({ end: true });
    const events = await d.rest();
    assert.is((control(events[0])?.metadata as Record<string, string>)['x-countdown-from'], '2');
    assert.equal(texts(events), [{ n: 2 }, { n: 1 }]);
    assert.equal(control(events.at(-2)), { end: true, trailers: { 'x-countdown': 'done' } });
  },
);

serve('the function process ends after its WebSocket stream', async () => {
  const c = client(`${ws(gateway)}/streams/S.Count`);
  await c.next();
  c.messages({ count: 3 });
  c.send({ end: true });
  const events = await c.rest();
  const [first, ...rest] = texts(events) as [{ pid: number }, ...unknown[]];
  assert.equal(rest, [{ i: 1 }, { i: 2 }]);
  await eventually(() => !alive(first.pid), 10_000, `its process ${first.pid} to exit`);
});

serve('a client that closes mid-stream cancels it: signal, finally, the process exits, a 499', async () => {
  const c = client(`${ws(gateway)}/streams/S.Forever`);
  await c.next();
  c.messages({});
  c.send({ end: true });
  await c.next('metadata');
  const first = await c.next('the first item');
  const { pid } = JSON.parse((first as { text: string }).text) as { pid: number };
  await c.next('another item');
  c.send({ close: 1000 });
  await eventually(() => /signal fired/.test(server.stdout()), 10_000, "the handler's signal to fire");
  await eventually(() => /generator returned/.test(server.stdout()), 10_000, 'its generator to return');
  await eventually(() => !alive(pid), 10_000, `its process ${pid} to exit`);
  assert.match(server.stdout(), /signal fired: \{"id":"streams","code":499/);
  assert.match(server.stdout(), /S\.Forever .*the stream was cancelled by its reader/);
});

serve('a function process killed mid-stream ends the WebSocket with the 500 error control frame', async () => {
  const c = client(`${ws(gateway)}/streams/S.Forever`);
  await c.next();
  c.messages({});
  c.send({ end: true });
  await c.next('metadata');
  const { pid } = JSON.parse(((await c.next('the first item')) as { text: string }).text) as { pid: number };
  process.kill(pid, 'SIGKILL');
  const events = await c.rest();
  const end = control(events.at(-2)) as { error?: { code: number; detail: string } };
  assert.is(end.error?.code, 500);
  assert.match(end.error!.detail, /crashed mid-stream/);
  assert.is(closeOf(events)?.close.code, 1000);
});

serve('refuses before the 101: an unknown endpoint (404), a service not deployed (404)', async () => {
  for (const [path, status] of [
    ['/stream/Chat.Nope', 404],
    ['/nothing/Chat.Echo', 404],
  ] as const) {
    const r = await raw(gateway, path);
    assert.is(r.status, status, path);
    await r.until(() => r.closed, 'the connection to close');
    assert.is((JSON.parse(r.body) as { code: number }).code, status);
  }
});

serve.run();

// ---
const authSuite = suite('micro-fn serve --auth: a WebSocket carries its token in ?metadata=');
let secured: { home: ReturnType<typeof tempHome>; env: Record<string, string>; serve: Running; gateway: string };

authSuite.before(async () => {
  const scratchHome = tempHome();
  const senv = { MICRO_FN_HOME: scratchHome.home };
  const s = start(['serve', '--address', '127.0.0.1:0', '--pool', '1', '--auth'], senv);
  const [, address] = await s.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  secured = { home: scratchHome, env: senv, serve: s, gateway: address! };
  const r = await cli(['deploy', 'examples/stream', '--target', 'local'], senv, { timeout: 60_000 });
  assert.is(r.code, 0, r.stderr);
});
authSuite.after.each(() => {
  for (const c of clients.splice(0)) c.stop();
  for (const r of raws.splice(0)) r.destroy();
});
authSuite.after(async () => {
  secured.serve.kill();
  await secured.serve.exited().catch(() => {});
  secured.home.cleanup();
});

authSuite('no token: 401 before any 101; a token in ?metadata=: the echo runs', async () => {
  const refused = await raw(secured.gateway, '/stream/Chat.Echo');
  assert.is(refused.status, 401);
  const t = (await cli(['auth', 'token', '--scope', 'user'], secured.env)).stdout.trim();
  const metadata = encodeURIComponent(JSON.stringify({ authorization: `Bearer ${t}` }));
  const c = client(`${ws(secured.gateway)}/stream/Chat.Echo?metadata=${metadata}`);
  assert.equal(await c.next(), { open: true });
  c.messages('hi');
  c.send({ end: true });
  assert.equal(texts(await c.rest()), [{ echo: 'hi' }]);
});

authSuite.run();
