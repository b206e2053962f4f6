/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core): a real `micro-fn serve`
 * with helloworld and a subscriber that always fails, logged in through the link `micro-fn dashboard` prints.
 * Screenshots go to test/artifacts/ (gitignored). Without chromium the suite is skipped, except under CI=true.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, launchChromium } from './browser.js';
import { cli, controlHeaders, root, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';

const ARTIFACTS = join(root, 'test', 'artifacts');

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running | undefined;
let gateway: string;
let browser: Browser | undefined;
let page: Page;
/** Console errors and uncaught exceptions of the page. */
const problems: string[] = [];
const shots: string[] = [];

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 30000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

async function screenshot(name: string): Promise<void> {
  const path = join(ARTIFACTS, `dashboard-${name}.png`);
  await withTimeout(page.screenshot({ path, fullPage: true }), 10000, 'screenshot');
  shots.push(path);
}

/** serve's own figures for `name`, read from Runtime.Stats with the control token. */
async function stats(name: string): Promise<{ invocations: number } | undefined> {
  const res = await withTimeout(
    fetch(`${gateway}/micro-fn/Runtime.Stats`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json', ...controlHeaders(scratch.home) },
    }),
    10000,
    'Runtime.Stats',
  );
  const body = (await res.json()) as { functions: { name: string; invocations: number }[] };
  return body.functions.find((f) => f.name === name);
}

// ---
const board = suite('the dashboard in Chromium');
const available = chromiumAvailable("the dashboard's browser tests");

board.before(async () => {
  if (!available) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0'], env);
  [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
  await serve.waitFor(/dashboard: http/);
  await ok(['deploy', 'examples/helloworld']);
  await ok(['deploy', 'test/fixtures/worker']);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(15000);
  page.on('console', (m) => void (m.type() === 'error' && problems.push(`console: ${m.text()}`)));
  page.on('pageerror', (e) => void problems.push(`uncaught: ${e.message}`));
});

board.after(async () => {
  await browser?.close().catch(() => {});
  if (serve) {
    serve.child.kill('SIGTERM');
    await serve.exited(10000).catch(() => serve!.kill());
  }
  scratch?.cleanup();
  if (shots.length) console.log(`  screenshots: ${shots.join(', ')}`);
});

/** A test of the suite: skipped without chromium; the page's console errors counted from its start. */
const test = (name: string, fn: () => Promise<void>) =>
  board(name, async () => {
    problems.length = 0;
    if (available) await fn();
  });

test('logs in through the link `micro-fn dashboard` prints and shows the deployed function, with no console errors', async () => {
  const { url } = JSON.parse((await ok(['dashboard', '--json'])).stdout) as { url: string };
  const outside = await page.goto(new URL('/', url).href);
  assert.is(outside?.status(), 401, 'the page before logging in');
  assert.match((await page.locator('body').textContent())!, 'micro-fn dashboard');
  await screenshot('logged-out');
  // Chromium reports the 401 of the page itself; nothing else may go wrong there (a style its CSP blocks, say).
  assert.equal(
    problems.filter((p) => !p.includes('status of 401')),
    [],
    'console errors of the logged-out page',
  );
  problems.length = 0;
  await page.goto(url);
  assert.is(new URL(page.url()).pathname, '/', 'redirected to the page, the token gone from the address');
  await page.locator('#functions tr[data-function="helloworld"]').waitFor();
  await page.locator('#status.live').waitFor();
  await screenshot('loaded');
  assert.equal(problems, [], 'console errors');
});

test('updates after a call: a feed row and the invocation counter', async () => {
  const counter = page.locator('#functions tr[data-function="helloworld"] [data-field="invocations"]');
  const before = Number(await counter.textContent());
  await ok(['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}']);
  await page.locator('#feed tbody tr[data-function="helloworld"]').first().waitFor();
  assert.match(
    (await page.locator('#feed tbody tr[data-function="helloworld"]').first().textContent())!,
    'Greeter.Hello',
  );
  await eventually(async () => Number(await counter.textContent()) === before + 1, 10000, 'the counter at +1');
  await page.locator('#charts .chart[data-function="helloworld"]').waitFor();
  await screenshot('after-call');
  assert.equal(problems, [], 'console errors');
});

test('replays a dead letter from the page: serve hands the message out again', async () => {
  await ok(['publish', 'work.poison', '{}']); // no dir: the subscriber fails on every attempt
  const topic = page.locator('#dlq [data-topic="work.poison"]');
  // Five failed attempts with backoff, then the page's next look at the dead letters.
  await eventually(
    async () =>
      /^1 dead letter$/.test(
        (await topic
          .locator('[data-field="count"]')
          .textContent()
          .catch(() => '')) ?? '',
      ),
    30000,
    'the dead letter on the page',
    250,
  );
  const handed = (await stats('worker'))!.invocations;
  assert.is(handed, 5, 'attempts before the replay');
  await screenshot('dead-letter');
  await topic.getByRole('button', { name: 'Replay' }).click();
  await topic.locator('[data-field="result"]', { hasText: 'replayed 1' }).waitFor();
  await eventually(async () => (await stats('worker'))!.invocations > handed, 15000, 'the message handed out again');
  await screenshot('replayed');
  await page.emulateMedia({ colorScheme: 'dark' });
  await screenshot('dark');
  assert.equal(problems, [], 'console errors');
});

board.run();
