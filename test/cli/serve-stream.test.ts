/**
 * Streams through a real `micro-fn serve`: the gateway, the pool and the pipe to real function processes
 * (test/fixtures/streams), called with `micro-fn call` and with fetch.
 */
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, lastJson, start, tempHome, type Running } from './helpers.js';
import { eventually, sleep, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;
const running: Running[] = [];

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Resident memory of `pid` in MiB, from /proc/<pid>/status (0 once it is gone). */
function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Reads an NDJSON body line by line; `each` returns false to stop (the reader then cancels the body). */
async function readLines(res: Response, each: (line: string, n: number) => Promise<boolean | void> | boolean | void) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return n;
    text += decoder.decode(value, { stream: true });
    let at: number;
    while ((at = text.indexOf('\n')) >= 0) {
      const line = text.slice(0, at);
      text = text.slice(at + 1);
      if ((await each(line, n++)) === false) {
        await reader.cancel();
        return n;
      }
    }
  }
}

const post = (path: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${gateway}/streams/${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
    signal,
  });

// ---
const streams = suite('micro-fn serve: streams through the pipe');

streams.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--pool', '1'], env);
  const [, address] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  gateway = address!;
  // A long timeout: the deadline bounds a whole stream, and the 1 GiB stream below takes minutes on a loaded machine.
  const r = await cli(['deploy', 'test/fixtures/streams', '--target', 'local', '--timeout', '300s'], env, {
    timeout: 60_000,
  });
  assert.is(r.code, 0, r.stderr);
});

streams.after(async () => {
  for (const r of running.splice(0)) r.kill();
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
});

streams(
  'micro-fn call prints a server stream through serve one JSON value per line (5 values); one request log line',
  async () => {
    const r = await cli(['call', 'streams', 'S.Count', '{"count":5}'], env, { timeout: 20_000 });
    assert.is(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.is(lines.length, 5);
    assert.equal(
      lines.slice(1).map((l) => JSON.parse(l)),
      [{ i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }],
    );
    // The request log: one line for the one invocation, once its stream has ended.
    await eventually(
      () => /streams S\.Count 200 \S+ms \w+ \S+ stream in 0 out 5\n/.test(serve.stdout()),
      5000,
      'its log line',
    );
  },
);

streams('micro-fn call sums a client stream of 1,000 numbers from stdin through serve (500,500)', async () => {
  const input = Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join('');
  const r = await cli(['call', 'streams', 'S.Sum'], env, { input, timeout: 20_000 });
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { sum: 500500, count: 1000 });
  await eventually(() => /streams S\.Sum 200 .* stream in 1000 out 0\n/.test(serve.stdout()), 5000, 'its log line');
});

streams('micro-fn call echoes a bidi stream of 100 messages through serve, in order', async () => {
  const values = Array.from({ length: 100 }, (_, i) => ({ n: i }));
  const r = await cli(['call', 'streams', 'S.Echo'], env, {
    input: values.map((v) => `${JSON.stringify(v)}\n`).join(''),
    timeout: 20_000,
  });
  assert.is(r.code, 0, r.stderr);
  assert.equal(
    r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l)),
    values,
  );
});

streams(
  'a caller that disconnects after 3 messages: the handler sees its signal, its process exits, the pool serves the next call',
  async () => {
    const abort = new AbortController();
    const res = await withTimeout(post('S.Forever', {}, abort.signal), 15_000, 'the stream to start');
    assert.is(res.status, 200);
    let pid = 0;
    await readLines(res, (line, n) => {
      if (n === 0) pid = (JSON.parse(line) as { pid: number }).pid;
      return n < 2;
    }).catch(() => {});
    abort.abort();
    await eventually(() => /signal fired/.test(serve.stdout()), 10_000, "the handler's signal to fire");
    await eventually(() => /generator returned/.test(serve.stdout()), 10_000, 'its generator to return');
    await eventually(() => !alive(pid), 10_000, `its process ${pid} to exit`);
    const r = await cli(['call', 'streams', 'S.Count', '{"count":2}'], env, { timeout: 20_000 });
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout.trimEnd().split('\n').length, 2, 'the next call is served');
  },
);

streams('a function process killed mid-stream: micro-fn call exits 1 with a 500 error, not a hang', async () => {
  const caller = start(['call', 'streams', 'S.Forever'], env);
  running.push(caller);
  await eventually(() => caller.stdout().split('\n').length > 2, 15_000, 'the first 2 lines');
  const { pid } = JSON.parse(caller.stdout().split('\n')[0]!) as { pid: number };
  process.kill(pid, 'SIGKILL');
  assert.is(await withTimeout(caller.exited(), 15_000, 'the caller to end'), 1);
  const error = lastJson(caller.stderr()) as { code: number; detail: string };
  assert.is(error.code, 500);
  assert.match(error.detail, /crashed mid-stream: its process was killed \(SIGKILL\)/);
});

streams(
  "backpressure: 1 GiB (16,384 messages of 64 KiB) read slowly keeps serve's RSS within 128 MiB of its start and the function's under 192 MiB",
  async () => {
    const servePid = serve.child.pid!;
    const before = rss(servePid);
    const res = await withTimeout(post('S.Count', { count: 16_384, size: 65_536 }), 15_000, 'the stream to start');
    assert.is(res.status, 200);
    let pid = 0;
    let servePeak = 0;
    let fnPeak = 0;
    const count = await withTimeout(
      readLines(res, async (line, n) => {
        if (n === 0) pid = (JSON.parse(line) as { pid: number }).pid;
        if (n % 64 === 0) {
          servePeak = Math.max(servePeak, rss(servePid));
          fnPeak = Math.max(fnPeak, rss(pid));
          await sleep(5); // a slow reader: the stream waits for it
        }
      }),
      240_000,
      'the 1 GiB stream',
    );
    assert.is(count, 16_384, `${count} of 16,384 messages, then the stream ended: ${serve.stdout().slice(-500)}`);
    assert.ok(servePeak - before < 128, `serve grew from ${before.toFixed(0)} to ${servePeak.toFixed(0)} MiB`);
    assert.ok(fnPeak > 0 && fnPeak < 192, `the function process peaked at ${fnPeak.toFixed(0)} MiB`);
  },
);

streams.run();
