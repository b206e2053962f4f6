/**
 * A real EventSource in headless Chromium reads a server stream from `micro-fn serve` (issue 16): examples/stream
 * deployed, the page opened on serve's own origin (so the EventSource is same-origin: no CORS), then
 * `new EventSource('/stream/Countdown.Count?request=...')`. Without chromium the suite is skipped, except under CI=true.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, launchChromium } from './browser.js';
import { cli, start, tempHome, type Running } from './helpers.js';
import { withTimeout } from '../helpers.js';

/** What the page saw: each event in order, and the EventSource's readyState once it was done (2: CLOSED). */
interface Seen {
  events: { type: string; data: string | null }[];
  readyState: number;
}

/**
 * Runs in the page: opens an EventSource on a path and resolves at its `end` event (closing it there: an
 * EventSource reconnects when its stream ends, and would call the function again) or at a failed connection. A
 * string, not a function: tsx compiles functions with helpers (`__name`) that the page does not have.
 */
const READ_EVENTS = `(path) => new Promise((resolve) => {
  const events = [];
  const source = new EventSource(path);
  const done = () => {
    source.close();
    resolve({ events, readyState: source.readyState });
  };
  source.onmessage = (e) => events.push({ type: 'message', data: e.data });
  source.addEventListener('end', (e) => {
    events.push({ type: 'end', data: e.data });
    done();
  });
  // The stream's own \`event: error\` carries data; a failed connection is an Event without any.
  source.addEventListener('error', (e) => {
    events.push({ type: 'error', data: e.data ?? null });
    if (e.data !== undefined || source.readyState === EventSource.CLOSED) done();
  });
})`;

const readEvents = (path: string) => page.evaluate(`(${READ_EVENTS})(${JSON.stringify(path)})`) as Promise<Seen>;

let scratch: ReturnType<typeof tempHome>;
let serve: Running | undefined;
let browser: Browser | undefined;
let page: Page;

// ---
const events = suite('EventSource in Chromium');
const available = chromiumAvailable('the EventSource browser tests');

events.before(async () => {
  if (!available) return;
  scratch = tempHome();
  const env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0'], env);
  const [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
  const deployed = await cli(['deploy', 'examples/stream'], env, { timeout: 30000 });
  assert.is(deployed.code, 0, deployed.stderr);
  browser = await launchChromium();
  page = await browser.newPage();
  page.setDefaultTimeout(15000);
  // serve's own origin: the EventSource below is same-origin.
  await withTimeout(page.goto(`${gateway}/health`), 15000, 'the page on serve');
});

events.after(async () => {
  await browser?.close().catch(() => {});
  if (serve) {
    serve.child.kill('SIGTERM');
    await serve.exited(10000).catch(() => serve!.kill());
  }
  scratch?.cleanup();
});

const test = (name: string, fn: () => Promise<void>) =>
  events(name, async () => {
    if (available) await fn();
  });

const countdown = (request: unknown) =>
  `/stream/Countdown.Count?request=${encodeURIComponent(JSON.stringify(request))}`;

test('reads Countdown.Count {"from":3} as 3 messages in order, then the end event with the trailers; closed after it', async () => {
  const seen = await withTimeout(readEvents(countdown({ from: 3, delay: 20 })), 30000, 'the stream');
  assert.equal(seen.events, [
    { type: 'message', data: '{"n":3}' },
    { type: 'message', data: '{"n":2}' },
    { type: 'message', data: '{"n":1}' },
    { type: 'end', data: '{"x-countdown":"done"}' },
  ]);
  assert.is(seen.readyState, 2, 'the EventSource is CLOSED after the end event');
});

test('a request the function refuses before its first item (400) fails the EventSource without a reconnect', async () => {
  const seen = await withTimeout(readEvents(countdown({ from: -1 })), 30000, 'the refusal');
  assert.equal(seen.events, [{ type: 'error', data: null }], 'one failed connection, no message');
  assert.is(seen.readyState, 2, 'CLOSED: a non-200 answer is not retried by the browser');
});

events.run();
