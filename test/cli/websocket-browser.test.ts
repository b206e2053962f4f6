/**
 * Streams over WebSocket from a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core) opens
 * a WebSocket to a real `micro-fn run examples/stream`, as a page's script would. Without chromium the suite is
 * skipped, except under CI=true.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Browser, Page } from 'playwright-core';
import { chromiumAvailable, launchChromium } from './browser.js';
import { start, tempHome, type Running } from './helpers.js';
import { withTimeout } from '../helpers.js';

interface Seen {
  opened: boolean;
  texts: unknown[];
  controls: Record<string, unknown>[];
  close: { code: number; clean: boolean };
}

/**
 * Runs in the page: opens `url`, sends `messages` as text frames and the end control object, and resolves with what
 * came back once the server closed.
 */
function converse(page: Page, url: string, messages: unknown[]): Promise<Seen> {
  return page.evaluate(
    ({ url, messages }) =>
      new Promise<Seen>((resolve) => {
        const seen: Seen = { opened: false, texts: [], controls: [], close: { code: 0, clean: false } };
        const ws = new WebSocket(url);
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => {
          seen.opened = true;
          for (const m of messages) ws.send(JSON.stringify(m));
          ws.send(new TextEncoder().encode('{"end":true}'));
        };
        ws.onmessage = (e) => {
          if (typeof e.data === 'string') seen.texts.push(JSON.parse(e.data));
          else seen.controls.push(JSON.parse(new TextDecoder().decode(e.data as ArrayBuffer)));
        };
        ws.onclose = (e) => {
          seen.close = { code: e.code, clean: e.wasClean };
          resolve(seen);
        };
      }),
    { url, messages },
  );
}

// ---
const browserSuite = suite('streams over WebSocket from headless Chromium');
const available = chromiumAvailable('the WebSocket browser tests');
let scratch: ReturnType<typeof tempHome>;
let browser: Browser | undefined;
let page: Page;
const running: Running[] = [];

browserSuite.before(async () => {
  if (!available) return;
  scratch = tempHome();
  browser = await launchChromium();
  page = await browser.newPage();
});
browserSuite.after.each(() => {
  for (const r of running.splice(0)) r.kill();
});
browserSuite.after(async () => {
  await browser?.close();
  scratch?.cleanup();
});

async function launch(): Promise<{ fn: Running; ws: string }> {
  const fn = start(['run', 'examples/stream'], { MICRO_FN_HOME: scratch.home });
  running.push(fn);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return { fn, ws: address!.replace('http://', 'ws://') };
}

browserSuite('a page echoes 3 messages through Chat.Echo (bidi); the instance exits 0 after it', async () => {
  if (!available) return;
  const { fn, ws } = await launch();
  const seen = await withTimeout(converse(page, `${ws}/stream/Chat.Echo`, ['hi', { b: 1 }, 3]), 20_000, 'the echo');
  assert.ok(seen.opened);
  assert.equal(seen.texts, [{ echo: 'hi' }, { echo: { b: 1 } }, { echo: 3 }]);
  assert.ok(seen.controls[0]?.metadata, 'metadata first');
  assert.equal(seen.controls.at(-1), { end: true, trailers: {} });
  assert.equal(seen.close, { code: 1000, clean: true });
  assert.is(await withTimeout(fn.exited(), 20_000, 'the run process to exit'), 0);
});

browserSuite(
  'a page reads a countdown (a server stream: the request is its first frame) with metadata and trailers',
  async () => {
    if (!available) return;
    const { fn, ws } = await launch();
    const seen = await withTimeout(
      converse(page, `${ws}/stream/Countdown.Count`, [{ from: 3, delay: 1 }]),
      20_000,
      'the countdown',
    );
    assert.equal(seen.texts, [{ n: 3 }, { n: 2 }, { n: 1 }]);
    assert.is((seen.controls[0]?.metadata as Record<string, string>)['x-countdown-from'], '3');
    assert.equal(seen.controls.at(-1), { end: true, trailers: { 'x-countdown': 'done' } });
    assert.is(await withTimeout(fn.exited(), 20_000, 'the run process to exit'), 0);
  },
);

browserSuite.run();
