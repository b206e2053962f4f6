/**
 * serve's dashboard over HTTP, in this process: its login (one-time tokens, session cookies), the checks every request
 * passes (Host, Origin, cookie), and the bound on a live feed whose reader stalls. The data it shows comes from a
 * stand-in for LocalRuntime here; test/cli/dashboard*.test.ts run it inside a real `micro-fn serve`.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sessions } from '../../serve/dashboard/session.js';
import { Dashboard, type DashboardSource } from '../../serve/dashboard/server.js';
import { Invocations, type InvocationEvent } from '../../serve/observe/event.js';
import { eventually, readUntil, sleep, withTimeout } from '../helpers.js';

const CONTROL = 'c'.repeat(43);

// ---
const sessions = suite('Sessions');

sessions('a login token works once', () => {
  const s = new Sessions({ control: CONTROL });
  const { token } = s.login();
  assert.ok(s.redeem(token), 'first use');
  assert.not.ok(s.redeem(token), 'second use');
});

sessions('a login token does not work past its expiry', () => {
  let now = 1_000_000;
  const s = new Sessions({ control: CONTROL, loginTtl: 60_000, now: () => now });
  const { token } = s.login();
  now += 60_001;
  assert.not.ok(s.redeem(token));
});

sessions('a token or cookie made under another credential, or altered, is refused', () => {
  const mine = new Sessions({ control: CONTROL });
  const other = new Sessions({ control: 'd'.repeat(43) });
  assert.not.ok(mine.redeem(other.login().token), "another serve's login token");
  assert.not.ok(mine.valid(other.session()), "another credential's cookie");
  const cookie = mine.session();
  assert.ok(mine.valid(cookie));
  assert.not.ok(mine.valid(`${cookie.slice(0, -1)}${cookie.endsWith('A') ? 'B' : 'A'}`), 'an altered cookie');
  assert.not.ok(mine.valid('1.2'), 'a malformed cookie');
});

sessions('a session cookie expires', () => {
  let now = 1_000_000;
  const s = new Sessions({ control: CONTROL, now: () => now });
  const cookie = s.session();
  now += 12 * 3600 * 1000 + 1;
  assert.not.ok(s.valid(cookie));
});

sessions.run();

// ---
const dashboard = suite('Dashboard');

let home: string;
let board: Dashboard;
const invocations = new Invocations();
const replays: string[] = [];
const sockets: Socket[] = [];

const source: DashboardSource = {
  invocations,
  stats: () => ({ at: new Date().toISOString(), uptime: 1, functions: [] }),
  list: () => [],
  deadLetters: () => ({
    list: async () => [],
    replay: async (topic) => {
      replays.push(topic);
      return 1;
    },
  }),
  publish: async () => {},
};

const event = (i: number): InvocationEvent => ({
  at: Date.now(),
  function: 'helloworld',
  kind: 'call',
  id: `call-${i}-${'x'.repeat(200)}`,
  endpoint: 'Greeter.Hello',
  status: 200,
  ok: true,
  started: true,
  cold: false,
  ms: 1.5,
});

dashboard.before(async () => {
  home = mkdtempSync(join(tmpdir(), 'micro-fn-dashboard-'));
  board = await Dashboard.start(source, {
    address: '127.0.0.1:0',
    control: CONTROL,
    home,
    loginTtl: 300,
    feed: { buffered: 64 * 1024 },
  });
});

dashboard.after(async () => {
  for (const s of sockets) s.destroy();
  await board?.close();
  rmSync(home, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) =>
  withTimeout(fetch(`${board.url}${path}`, { headers, redirect: 'manual' }), 5000, `GET ${path}`);

/** Logs in with a fresh token: the cookie header to send. */
async function logIn(): Promise<string> {
  const login = new URL(board.login().url);
  const res = await get(`${login.pathname}${login.search}`);
  assert.is(res.status, 303);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

dashboard(
  'answers 401 without a session cookie: a page that says how to log in, and error JSON for the API',
  async () => {
    const page = await get('/');
    assert.is(page.status, 401);
    assert.match(await page.text(), 'micro-fn dashboard');
    for (const path of ['/api/overview', '/api/events', '/api/dlq', '/app.js']) {
      const res = await get(path);
      assert.is(res.status, 401, path);
      await res.body?.cancel();
    }
    const api = await get('/api/overview', { cookie: `micro-fn-dashboard-${new URL(board.url).port}=forged.x.y` });
    assert.is(api.status, 401);
    assert.match((await api.json()).detail, 'micro-fn dashboard');
  },
);

dashboard('a login link logs in once: the cookie is HttpOnly and SameSite=Strict, the link then fails', async () => {
  const login = new URL(board.login().url);
  const first = await get(`${login.pathname}${login.search}`);
  assert.is(first.status, 303);
  assert.is(first.headers.get('location'), '/');
  const cookie = first.headers.get('set-cookie')!;
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const page = await get('/', { cookie: cookie.split(';')[0]! });
  assert.is(page.status, 200);
  assert.match(await page.text(), '<script src="/app.js"');
  const again = await get(`${login.pathname}${login.search}`);
  assert.is(again.status, 401, 'the second use');
  await again.body?.cancel();
  const inAlready = await get(`${login.pathname}${login.search}`, { cookie: cookie.split(';')[0]! });
  assert.is(inAlready.status, 303, 'the second use from the browser it logged in: straight in');
  assert.is(inAlready.headers.get('set-cookie'), null, 'no new session');
});

dashboard('a login link past its expiry is refused', async () => {
  const login = new URL(board.login().url);
  await sleep(400); // loginTtl 300 ms
  const res = await get(`${login.pathname}${login.search}`);
  assert.is(res.status, 401);
  assert.match(await res.text(), 'expired');
});

dashboard('refuses a Host other than its own (DNS rebinding), even with a valid cookie', async () => {
  const cookie = await logIn();
  const port = new URL(board.url).port;
  // fetch sets Host itself: speak HTTP by hand.
  const answer = await rawRequest(
    `GET /api/overview HTTP/1.1\r\nHost: attacker.example:${port}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`,
  );
  assert.match(answer, /^HTTP\/1\.1 403/);
  const own = await rawRequest(
    `GET /api/overview HTTP/1.1\r\nHost: localhost:${port}\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`,
  );
  assert.match(own, /^HTTP\/1\.1 200/);
});

dashboard('refuses a replay whose Origin is not the dashboard: 0 of 2 foreign replays run, 1 of 1 own', async () => {
  const cookie = await logIn();
  const replay = (origin: string | undefined) =>
    withTimeout(
      fetch(`${board.url}/api/dlq/replay`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json', ...(origin ? { origin } : {}) },
        body: JSON.stringify({ topic: 'work.poison' }),
      }),
      5000,
      'replay',
    );
  const before = replays.length;
  assert.is((await replay('http://attacker.example')).status, 403);
  assert.is((await replay(undefined)).status, 403);
  assert.is(replays.length - before, 0, 'foreign replays run');
  const own = await replay(board.url);
  assert.is(own.status, 200);
  assert.equal(await own.json(), { replayed: 1 });
  assert.is(replays.length - before, 1, 'own replays run');
});

dashboard('a feed delivers each invocation event', async () => {
  const cookie = await logIn();
  const res = await get('/api/events', { cookie });
  assert.is(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const reader = res.body!.getReader();
  await eventually(() => board.feed.stats().clients >= 1, 5000, 'the feed registered');
  invocations.emit(event(1));
  const text = await readUntil(reader, 'call-1-', 5000, 'the event on the feed');
  await reader.cancel();
  assert.match(text, /data: \{"at":\d+,"function":"helloworld"/);
});

dashboard(
  'a feed whose reader stalls holds at most its bound: 20000 events of 300 bytes, most dropped and counted',
  async () => {
    const cookie = await logIn();
    const port = new URL(board.url).port;
    const socket = connect(Number(port), '127.0.0.1');
    sockets.push(socket);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(`GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: ${cookie}\r\n\r\n`);
    socket.pause(); // never reads: the kernel's buffers fill, then serve's
    await eventually(() => board.feed.stats().clients >= 1, 5000, 'the feed registered');
    const droppedBefore = board.feed.dropped;
    let most = 0;
    for (let i = 0; i < 20_000; i++) {
      invocations.emit(event(i));
      if (i % 500 === 0) {
        await new Promise((resolve) => setImmediate(resolve)); // let the kernel take what it will
        most = Math.max(most, board.feed.stats().buffered);
      }
    }
    most = Math.max(most, board.feed.stats().buffered);
    const dropped = board.feed.dropped - droppedBefore;
    assert.ok(most <= 64 * 1024, `serve held ${most} bytes for the stalled feed (bound 65536)`);
    assert.ok(dropped >= 5_000, `${dropped} of 20000 events dropped (the kernel holds at most a few MB of the rest)`);
    socket.destroy();
  },
);

dashboard.run();

/** Sends `request` as written and resolves with the whole answer. */
function rawRequest(request: string): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = connect(Number(new URL(board.url).port), '127.0.0.1');
      sockets.push(socket);
      let answer = '';
      socket.on('data', (d) => (answer += d));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
      socket.write(request);
    }),
    5000,
    'raw request',
  );
}
