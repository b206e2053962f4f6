/**
 * The dashboard of a real `micro-fn serve`, over HTTP: where serve says it is, the link `micro-fn dashboard` prints,
 * the live feed after a real call, and serve starting without one when its address is taken or it is turned off.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, controlHeaders, start, tempHome, type Running } from './helpers.js';
import { readUntil, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;
let dashboard: string;
const extra: Running[] = [];

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 30000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

/** The session cookie the link of `micro-fn dashboard` gives. */
async function logIn(runtime = gateway): Promise<string> {
  const { url } = JSON.parse((await ok(['dashboard', '--json', '--runtime', runtime])).stdout) as { url: string };
  const res = await withTimeout(fetch(url, { redirect: 'manual' }), 5000, 'login');
  assert.is(res.status, 303);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}

// ---
const board = suite('micro-fn dashboard');

board.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--json'], env);
  [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
  [, dashboard] = (await serve.waitFor(/"dashboard":"(http:\/\/127\.0\.0\.1:\d+)"/)) as [string, string];
  await ok(['deploy', 'examples/helloworld']);
});

board.after(async () => {
  for (const r of [...extra, serve]) {
    r.child.kill('SIGTERM');
    await r.exited(10000).catch(() => r.kill());
  }
  scratch.cleanup();
});

board('serve --json names the dashboard in a field; `micro-fn dashboard` prints a link to it', async () => {
  assert.ok(dashboard !== gateway, 'an address of its own');
  const printed = await ok(['dashboard']);
  assert.match(printed.stdout, new RegExp(`^${dashboard}/login\\?t=[\\w.-]+\\n$`));
  const page = await withTimeout(fetch(`${dashboard}/`), 5000, 'GET /');
  assert.is(page.status, 401, 'the page without the cookie');
  await page.body?.cancel();
});

board('Dashboard.Login answers 401 without the control token, and with it a link that works', async () => {
  const login = (headers: Record<string, string>) =>
    withTimeout(
      fetch(`${gateway}/micro-fn/Dashboard.Login`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json', ...headers },
      }),
      5000,
      'Dashboard.Login',
    );
  const refused = await login({});
  assert.is(refused.status, 401);
  assert.not.match(await refused.text(), '/login?t=');
  const granted = (await (await login(controlHeaders(scratch.home))).json()) as { url: string };
  const res = await withTimeout(fetch(granted.url, { redirect: 'manual' }), 5000, 'login');
  assert.is(res.status, 303);
});

board('the live feed delivers the event of a call through the gateway', async () => {
  const cookie = await logIn();
  const controller = new AbortController();
  const res = await withTimeout(
    fetch(`${dashboard}/api/events`, { headers: { cookie }, signal: controller.signal }),
    5000,
    'GET /api/events',
  );
  assert.is(res.status, 200);
  const reader = res.body!.getReader();
  await reader.read(); // `retry:`: the feed is open
  await ok(['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}']);
  const text = await readUntil(reader, '"function":"helloworld"', 10000, 'the call on the feed');
  controller.abort();
  const event = JSON.parse(/data: (.*)\n/.exec(text)![1]!) as { endpoint: string; status: number; kind: string };
  assert.equal([event.kind, event.endpoint, event.status], ['call', 'Greeter.Hello', 200]);
  const overview = await withTimeout(fetch(`${dashboard}/api/overview`, { headers: { cookie } }), 5000, 'overview');
  const body = (await overview.json()) as { functions: { name: string; invocations: number }[] };
  assert.is(body.functions.find((f) => f.name === 'helloworld')?.invocations, 1);
});

board(
  'a serve whose dashboard address is taken starts without one, says so, and `micro-fn dashboard` says why',
  async () => {
    const taken = new URL(dashboard).host;
    const second = start(['serve', '--address', '127.0.0.1:0', '--dashboard', taken], {
      ...env,
      MICRO_FN_HOME: `${scratch.home}/second`,
    });
    extra.push(second);
    await second.waitFor(
      new RegExp(`dashboard: cannot listen on ${taken.replaceAll('.', '\\.')} \\(EADDRINUSE\\); serve goes on`),
    );
    const [, address] = (await second.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
    const r = await cli(['dashboard', '--runtime', address], { MICRO_FN_HOME: `${scratch.home}/second` });
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, 'runs without a dashboard');
  },
);

board('--dashboard off loopback, or a name instead of an IP, is refused before serve starts: 2 of 2', async () => {
  for (const address of ['0.0.0.0:8080', 'localhost:8080']) {
    const r = await cli(['serve', '--address', '127.0.0.1:0', '--dashboard', address], env);
    assert.is(r.code, 1, address);
    assert.match(r.stderr, 'loopback IP address only', address);
  }
});

board.run();
