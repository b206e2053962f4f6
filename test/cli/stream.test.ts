/** Streams end to end: `micro-fn call` against a real `micro-fn run examples/stream`, over HTTP. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, lastJson, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';

const stream = suite('micro-fn call and run: streams');
let scratch: ReturnType<typeof tempHome>;
const running: Running[] = [];
stream.before(() => {
  scratch = tempHome();
});
stream.after.each(() => {
  for (const r of running.splice(0)) r.kill();
});
stream.after(() => scratch.cleanup());

async function launch(): Promise<{ fn: Running; address: string }> {
  const fn = start(['run', 'examples/stream'], { MICRO_FN_HOME: scratch.home });
  running.push(fn);
  const [, address] = await fn.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return { fn, address: address! };
}

const call = (args: string[], input?: string) =>
  cli(['call', 'stream', ...args], { MICRO_FN_HOME: scratch.home }, { input: input ?? '' });

stream('call prints a countdown one JSON value per line; the run process exits 0 after that one stream', async () => {
  const { fn } = await launch();
  const r = await call(['Countdown.Count', '{"from":3,"delay":10}', '--show-metadata']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '{"n":3}\n{"n":2}\n{"n":1}\n');
  assert.match(r.stderr, /"x-countdown-from":"3"/);
  assert.match(r.stderr, /"x-countdown":"done"/);
  assert.is(await fn.exited(), 0);
});

stream('call prints each line as it arrives: the first is out while the next is 60 s away', async () => {
  const { fn } = await launch();
  const caller = start(['call', 'stream', 'Countdown.Count', '{"from":2,"delay":60000}'], {
    MICRO_FN_HOME: scratch.home,
  });
  running.push(caller);
  await eventually(() => caller.stdout() === '{"n":2}\n', 10_000, 'the first line');
  // The caller gives up mid-stream: the handler's signal fires (its sleep ends) and the instance exits.
  caller.child.kill('SIGKILL');
  assert.is(await withTimeout(fn.exited(), 20_000, 'the run process to exit'), 1);
});

stream('call sums 1,000 numbers read from stdin as NDJSON (a client stream), then the instance exits 0', async () => {
  const { fn } = await launch();
  const input = Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join('');
  const r = await call(['Numbers.Sum'], input);
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { sum: 500500, count: 1000 });
  assert.is(await fn.exited(), 0);
});

stream('call echoes stdin through a bidi stream, one reply per line (3 messages)', async () => {
  const { fn } = await launch();
  const r = await call(['Chat.Echo'], '"a"\n{"b":1}\n3\n');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '{"echo":"a"}\n{"echo":{"b":1}}\n{"echo":3}\n');
  assert.is(await fn.exited(), 0);
});

stream(
  'call prints the error JSON on stderr and exits 1 when a client stream fails (a message that is no number)',
  async () => {
    const { fn } = await launch();
    const r = await call(['Numbers.Sum'], '1\n"two"\n3\n');
    assert.is(r.code, 1);
    assert.equal(lastJson(r.stderr), {
      id: 'stream',
      code: 400,
      detail: 'message 2 is not a number',
      status: 'Bad Request',
    });
    assert.is(await fn.exited(), 1);
  },
);

stream(
  'call refuses a json argument for a client stream, and a stdin line that is no JSON, with one clear line',
  async () => {
    const { fn, address } = await launch();
    const withArg = await call(['Numbers.Sum', '[1,2]']);
    assert.is(withArg.code, 1);
    assert.match(withArg.stderr, /pipe its messages to stdin/);
    const bad = await call(['Numbers.Sum'], '1\n{oops\n');
    assert.is(bad.code, 1);
    assert.match(bad.stderr, /stdin line 2 is not JSON/);
    // The instance is still there, or served the cut stream and left: either way it is one invocation at most.
    void address;
    fn.kill();
  },
);

stream(
  'a second request while the stream runs gets the retryable 503 (not started): a stream is the one invocation',
  async () => {
    const { fn, address } = await launch();
    const first = await withTimeout(
      fetch(`${address}/stream/Countdown.Count`, { method: 'POST', body: '{"from":2,"delay":60000}' }),
    );
    const reader = first.body!.getReader();
    await reader.read();
    const second = await withTimeout(fetch(`${address}/stream/Countdown.Count`, { method: 'POST', body: '{}' }));
    assert.is(second.status, 503);
    assert.is(((await second.json()) as { id: string }).id, 'micro-fn.not-started');
    await reader.cancel();
    assert.is(await withTimeout(fn.exited(), 20_000, 'the run process to exit'), 1);
  },
);

stream(
  'call exits 1 with the error JSON when the instance is killed mid-stream (a cut stream, never a clean end)',
  async () => {
    const { fn } = await launch();
    const caller = start(['call', 'stream', 'Countdown.Count', '{"from":2,"delay":60000}'], {
      MICRO_FN_HOME: scratch.home,
    });
    running.push(caller);
    await eventually(() => caller.stdout() === '{"n":2}\n', 10_000, 'the first line');
    fn.child.kill('SIGKILL');
    assert.is(await caller.exited(), 1);
    const error = lastJson(caller.stderr()) as { code: number; detail: string };
    assert.is(error.code, 503);
    assert.match(error.detail, /cut/);
  },
);

stream.run();
