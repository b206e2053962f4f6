/**
 * Streams through a FunctionPool (serve/pool.ts, serve/worker.ts) to real function processes started by the real
 * launcher (adapters/local/handler.ts on the other end of the pipe): the gateway's part is played by the test, with
 * hand-made request streams and a reader of the reply stream.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLocal } from '../../adapters/local/build.js';
import type { IpcInvoke } from '../../adapters/local/ipc.js';
import { MicroError } from '../../runtime/core/errors.js';
import { Metadata } from '../../runtime/core/metadata.js';
import type { MessageStream, StreamEnd } from '../../runtime/core/stream.js';
import { CallerSignal } from '../../runtime/core/transport.js';
import { Launcher } from '../../serve/launcher.js';
import type { InvocationEvent } from '../../serve/observe/event.js';
import { FunctionPool, type Outcome } from '../../serve/pool.js';
import { eventually, withTimeout } from '../helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
let dir: string;
let bundle: string;
let launcher: Launcher;
const pools: FunctionPool[] = [];
const lines: string[] = [];
const events: InvocationEvent[] = [];

async function pool(options: { timeout?: number; size?: number } = {}): Promise<FunctionPool> {
  const timeout = options.timeout ?? 20_000;
  const p = new FunctionPool({
    name: 'streams',
    launcher,
    bundle,
    env: { MICRO_FN_HOME: dir, MICRO_FN_TIMEOUT: String(timeout) },
    memory: 512,
    size: options.size ?? 1,
    concurrency: 4,
    queue: 4,
    timeout,
    log: (line) => lines.push(line),
    onInvocation: (e) => events.push(e),
  });
  pools.push(p);
  await withTimeout(p.describe(), 20_000, 'the first process to be ready');
  return p;
}

let ids = 0;
function invoke(endpoint: string, body: unknown = {}, stream = false): IpcInvoke {
  return {
    type: 'invoke',
    id: `s${++ids}`,
    endpoint,
    contentType: 'application/json',
    body: stream ? '' : JSON.stringify(body),
    metadata: {},
    ...(stream ? { stream: true } : {}),
  };
}

/** A request stream of `values`, pulled; `pulled` counts the messages asked for. */
function messages(values: unknown[]): MessageStream & { pulled: number } {
  let end!: (e: StreamEnd) => void;
  const s = {
    pulled: 0,
    end: new Promise<StreamEnd>((r) => (end = r)),
    [Symbol.asyncIterator]: () => ({
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        if (s.pulled >= values.length) {
          end({ trailers: new Metadata() });
          return { done: true, value: undefined };
        }
        return { done: false, value: enc.encode(JSON.stringify(values[s.pulled++])) };
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        end({ trailers: new Metadata() });
        return { done: true, value: undefined };
      },
    }),
  };
  return s;
}

function streamOf(outcome: Outcome): MessageStream {
  assert.ok(outcome.kind === 'reply' && outcome.stream, `a reply stream, got ${JSON.stringify(outcome)}`);
  return (outcome as { stream: MessageStream }).stream;
}

async function collect(stream: MessageStream): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const m of stream) out.push(JSON.parse(dec.decode(m)));
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// ---
const streams = suite('FunctionPool: streams through the pipe');

streams.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-pool-stream-'));
  const built = await buildLocal(join(process.cwd(), 'test', 'fixtures', 'streams', 'index.ts'), {
    outdir: join(dir, 'build'),
  });
  bundle = built.file;
  launcher = new Launcher({ home: dir });
  await withTimeout(launcher.start(), 15_000, 'the launcher to start');
});

streams.after(async () => {
  // A failed test may leave an invocation running: its process goes with the launcher.
  await withTimeout(Promise.all(pools.map((p) => p.close())), 10_000, 'the pools to close').catch(() => {});
  await launcher?.close();
  rmSync(dir, { recursive: true, force: true });
});

streams('a server stream of 1,000 messages arrives in order, with metadata before and trailers after', async () => {
  const p = await pool();
  const outcome = await p.run(invoke('S.Count', { count: 1000 }));
  const stream = streamOf(outcome);
  assert.is(outcome.kind === 'reply' && outcome.metadata['x-before'], 'first');
  const got = await withTimeout(collect(stream), 20_000, 'the stream');
  assert.is(got.length, 1000);
  assert.equal(
    got.slice(1),
    Array.from({ length: 999 }, (_, i) => ({ i: i + 1 })),
  );
  const end = await stream.end;
  assert.is(end.error, undefined);
  assert.is(end.trailers.get('x-count'), '1000');
  const pid = (got[0] as { pid: number }).pid;
  await eventually(() => !alive(pid), 10_000, 'the process to exit after its stream');
  await eventually(() => events.some((e) => e.endpoint === 'S.Count'), 5000, 'its event');
  const event = events.find((e) => e.endpoint === 'S.Count')!;
  assert.equal([event.status, event.ok, event.streamed], [200, true, { in: 0, out: 1000 }]);
});

streams('a client stream of 1,000 numbers is summed (500,500), one invocation', async () => {
  const p = await pool();
  const numbers = messages(Array.from({ length: 1000 }, (_, i) => i + 1));
  const outcome = await withTimeout(p.run(invoke('S.Sum', {}, true), undefined, numbers), 20_000, 'the sum');
  assert.equal(outcome.kind === 'reply' && [outcome.status, JSON.parse(outcome.body)], [
    200,
    { sum: 500500, count: 1000 },
  ]);
  assert.is(numbers.pulled, 1000);
  await eventually(() => events.some((e) => e.endpoint === 'S.Sum'), 5000, 'its event');
  const event = events.find((e) => e.endpoint === 'S.Sum')!;
  assert.equal(event.streamed, { in: 1000, out: 0 });
});

streams('a bidi echo of 100 messages comes back in order', async () => {
  const p = await pool();
  const values = Array.from({ length: 100 }, (_, i) => ({ n: i, text: `line\n${i} ü` }));
  const outcome = await p.run(invoke('S.Echo', {}, true), undefined, messages(values));
  assert.equal(await withTimeout(collect(streamOf(outcome)), 20_000, 'the echo'), values);
});

streams(
  'a reader that stops after 3 of 1,000: the handler sees its signal, its generator returns, its process exits, and the pool serves the next call',
  async () => {
    const p = await pool();
    const outcome = await p.run(invoke('S.Forever'));
    const it = streamOf(outcome)[Symbol.asyncIterator]();
    const first = JSON.parse(dec.decode((await it.next()).value as Uint8Array)) as { pid: number };
    await it.next();
    await it.next();
    await it.return!();
    await eventually(() => lines.some((l) => l.startsWith('signal fired')), 10_000, "the handler's signal to fire");
    await eventually(() => lines.includes('generator returned'), 10_000, 'its generator to return');
    await eventually(() => !alive(first.pid), 10_000, 'its process to exit');
    const next = await p.run(invoke('S.Count', { count: 3 }));
    assert.is((await collect(streamOf(next))).length, 3, 'the next call is served');
  },
);

streams('a process killed mid-stream (after 2 messages) ends the stream with a 500 that says so', async () => {
  const p = await pool();
  const it = streamOf(await p.run(invoke('S.Forever')))[Symbol.asyncIterator]();
  const { pid } = JSON.parse(dec.decode((await it.next()).value as Uint8Array)) as { pid: number };
  await it.next();
  process.kill(pid, 'SIGKILL');
  const error = await withTimeout(
    (async () => {
      try {
        for (;;) if ((await it.next()).done) return undefined;
      } catch (err) {
        return err as MicroError;
      }
    })(),
    10_000,
    'the stream to end',
  );
  assert.is(error?.code, 500);
  assert.match(error!.detail, /streams crashed mid-stream: its process was killed \(SIGKILL\)/);
});

streams('an error mid-stream reaches the reader after its 2 messages, as a 400', async () => {
  const p = await pool();
  const stream = streamOf(await p.run(invoke('S.Fail', { after: 2 })));
  const got: unknown[] = [];
  try {
    for await (const m of stream) got.push(JSON.parse(dec.decode(m)));
    assert.unreachable('the stream fails');
  } catch (err) {
    assert.equal([(err as MicroError).code, (err as MicroError).detail], [400, 'failed after 2']);
  }
  assert.equal(got, [{ i: 0 }, { i: 1 }]);
});

streams("the function's timeout bounds the whole stream: a stream past 1,500 ms ends with a 408", async () => {
  const p = await pool({ timeout: 1500 });
  const stream = streamOf(await p.run(invoke('S.Forever')));
  let count = 0;
  try {
    for await (const _ of stream) count++;
    assert.unreachable('the stream is cut');
  } catch (err) {
    assert.is((err as MicroError).code, 408, (err as MicroError).detail);
  }
  assert.ok(count > 1, `${count} messages before the cut`);
});

streams(
  'a function that writes 64 MiB to its pipe without a newline is stopped: its caller gets a 500 saying so, the pool serves on',
  async () => {
    const p = await pool();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    const outcome = await withTimeout(p.run(invoke('S.Flood')), 20_000, 'the flood to be stopped');
    clearInterval(sampler);
    assert.ok(outcome.kind === 'reply' && outcome.error, 'an error');
    assert.is(outcome.error!.code, 500);
    assert.match(
      outcome.error!.detail,
      /wrote a line of more than \d+ characters to its pipe \(fd 3\) and was stopped/,
    );
    const grew = (peak - before) / 1024 / 1024;
    assert.ok(grew < 48, `serve's memory grew by ${grew.toFixed(1)} MiB, within 48 MiB (the line limit is 16 MiB)`);
    assert.ok(
      lines.some((l) => /wrote a line of more than/.test(l)),
      'logged',
    );
    const next = await p.run(invoke('S.Count', { count: 2 }));
    assert.is((await collect(streamOf(next))).length, 2, 'the next call is served');
  },
);

streams(
  "a caller that goes before the first item fires the handler's signal at once, while it awaits before its first yield (499); the pool serves on",
  async () => {
    const p = await pool();
    const caller = new CallerSignal();
    const outcome = p.run(invoke('S.Late'), caller);
    await eventually(() => lines.includes('late: waiting before the first item'), 10_000, 'the handler to start');
    caller.go();
    // Without the cancel, the signal would fire only at the function's timeout (20 s), past this wait.
    await eventually(
      () => lines.some((l) => /^late: signal fired before the first item: .*went away/.test(l)),
      10_000,
      "the handler's signal to fire",
    );
    const o = await withTimeout(outcome, 10_000, 'the outcome');
    assert.is(o.kind === 'reply' && o.status, 499);
    const next = await p.run(invoke('S.Count', { count: 2 }));
    assert.is((await collect(streamOf(next))).length, 2, 'the next call is served');
  },
);

streams(
  "a caller that goes mid-way through a client stream fails the handler's read with a 499: 3 numbers came, no sum of them is the answer",
  async () => {
    const p = await pool();
    const caller = new CallerSignal();
    // 3 numbers, then a request stream that waits, as a caller's connection does before it closes.
    let pulled = 0;
    const numbers: MessageStream = {
      end: new Promise<StreamEnd>(() => {}),
      [Symbol.asyncIterator]: () => ({
        next: () =>
          ++pulled <= 3
            ? Promise.resolve({ done: false as const, value: enc.encode(String(pulled)) })
            : new Promise<IteratorResult<Uint8Array>>(() => {}),
        return: async () => ({ done: true as const, value: undefined }),
      }),
    };
    const outcome = p.run(invoke('S.Sum', {}, true), caller, numbers);
    await eventually(() => pulled > 3, 10_000, 'the 3 numbers to be read');
    caller.go();
    const o = await withTimeout(outcome, 10_000, 'the outcome');
    assert.ok(o.kind === 'reply', JSON.stringify(o));
    assert.is(o.status, 499, `not a sum of what came: ${o.body}`);
  },
);

streams(
  'a process that sends a stream message that is not text fails its stream with a 500 after the 1 message before it, is stopped, and serve stays up',
  async () => {
    const p = await pool();
    const stream = streamOf(await withTimeout(p.run(invoke('S.Forge')), 10_000, 'the forged reply'));
    const got: unknown[] = [];
    try {
      for await (const m of stream) got.push(JSON.parse(dec.decode(m)));
      assert.unreachable('the stream fails');
    } catch (err) {
      assert.equal(
        [(err as MicroError).code, (err as MicroError).detail],
        [500, 'micro-fn sent a stream message that is not text'],
      );
    }
    assert.equal(got, [{ i: 0 }]);
    const next = await p.run(invoke('S.Count', { count: 2 }));
    assert.is((await collect(streamOf(next))).length, 2, 'the next call is served');
  },
);

streams.run();

/** A caller that goes when told. */
