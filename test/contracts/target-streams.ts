/**
 * The target contract's stream tests (issue 16), for a host whose platform streams over HTTP both ways (Workers,
 * Deno): server, client and bidi streams of examples/stream, metadata before and trailers after, an error
 * mid-stream, cancellation both ways, and the WebSocket form. targetContract adds them when its host says
 * `streams: true`.
 */
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, withTimeout } from '../helpers.js';
import type { TargetFunction, TargetHost } from './target.js';
import type { Frame, SocketResult, SocketScript } from './socket-script.js';

/** The functions the stream tests call: the example as users write it, and a probe for the rest. */
export const STREAM_FUNCTIONS: readonly TargetFunction[] = [
  { name: 'stream', entry: 'examples/stream/index.ts' },
  { name: 'streamprobe', entry: 'test/fixtures/stream-probe/index.ts' },
];

/** What a host's platform does differently. */
export interface StreamOptions {
  /**
   * Why an NDJSON reply that fails mid-stream ends like a clean one on this platform (its HTTP server closes an
   * errored body normally), when it does: the test then asserts that, and that SSE and WebSocket carry the error.
   */
  ndjsonErrorLooksClean?: string;
}

/** What the stream tests need of targetContract. */
export interface StreamTestKit<C> extends StreamOptions {
  name: string;
  hostOf(ctx: C): TargetHost;
  call(ctx: C, fn: string, path: string, init?: RequestInit): Promise<Response>;
}

const encoder = new TextEncoder();
const json = { 'content-type': 'application/json' };
const ndjson = { 'content-type': 'application/x-ndjson' };

/** A request body made one chunk at a time as it is read; `next(i)` returns chunk i, or undefined at the end. */
function pulled(next: (i: number) => string | undefined | Promise<string | undefined>) {
  let i = 0;
  const seen = { cancelled: false, made: 0 };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const chunk = await next(i++);
        if (chunk === undefined) return controller.close();
        seen.made++;
        controller.enqueue(encoder.encode(chunk));
      },
      cancel: () => void (seen.cancelled = true),
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

const streamed = (body: ReadableStream<Uint8Array> | string, headers = ndjson) =>
  ({ method: 'POST', body, headers, duplex: 'half' }) as RequestInit;

/** Reads `res`'s body as text to its end; `error` says whether the body errored (a cut, not a clean end). */
async function readAll(res: Response): Promise<{ text: string; error: boolean }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await withTimeout(reader.read(), 15_000, 'reading a stream');
      if (done) return { text, error: false };
      text += value;
    }
  } catch {
    return { text, error: true };
  }
}

const lines = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as unknown);

const control = (frame: Frame | undefined) => (frame && 'control' in frame ? frame.control : undefined);
const texts = (result: SocketResult) => result.frames.flatMap((f) => ('text' in f ? [f.text] : []));

/** Registers the stream tests on `test`. */
export function streamTests<C>(test: Test<C>, kit: StreamTestKit<C>): void {
  const { name, hostOf, call } = kit;
  const socket = async (ctx: C, fn: string, path: string, script: SocketScript) => {
    const host = hostOf(ctx);
    if (!host.socket) throw new Error(`the ${name} host has no socket(): it streams, so give it one`);
    return withTimeout(host.socket(fn, path, script), 30_000, `${name}: WebSocket ${path}`);
  };
  const output = (ctx: C, fn: string) => hostOf(ctx).output(fn);
  const logged = (ctx: C, fn: string, line: string) =>
    eventually(async () => (await output(ctx, fn)).includes(line), 10_000, `${name}: "${line}" in the log`);

  test('streams Countdown.Count {"from":3} as 3 NDJSON lines, x-countdown-from set before the first', async (ctx) => {
    const res = await call(ctx, 'stream', '/stream/Countdown.Count', {
      method: 'POST',
      body: '{"from":3,"delay":1}',
      headers: json,
    });
    assert.is(res.status, 200);
    assert.is(res.headers.get('content-type'), 'application/x-ndjson');
    assert.is(res.headers.get('x-countdown-from'), '3', 'metadata set before the first item is a header');
    const { text, error } = await readAll(res);
    assert.not.ok(error);
    assert.equal(lines(text), [{ n: 3 }, { n: 2 }, { n: 1 }]);
  });

  test('streams an EventSource GET as SSE: 2 data events, then end with the trailers', async (ctx) => {
    const query = encodeURIComponent('{"from":2,"delay":1}');
    const res = await call(ctx, 'stream', `/stream/Countdown.Count?request=${query}`, {
      headers: { accept: 'text/event-stream' },
    });
    assert.is(res.headers.get('content-type'), 'text/event-stream');
    const { text } = await readAll(res);
    assert.is(text, 'data: {"n":2}\n\ndata: {"n":1}\n\nevent: end\ndata: {"x-countdown":"done"}\n\n');
  });

  test('sums a client stream of 1..100 sent as a chunked NDJSON body, 10 lines a chunk: {"sum":5050}', async (ctx) => {
    const body = pulled((i) =>
      i < 10 ? Array.from({ length: 10 }, (_, k) => `${i * 10 + k + 1}\n`).join('') : undefined,
    );
    const res = await call(ctx, 'stream', '/stream/Numbers.Sum', streamed(body.stream));
    assert.is(res.status, 200);
    assert.equal(await res.json(), { sum: 5050, count: 100 });
  });

  test('answers a line that is no JSON with 400, a line of 1 MiB + 1 with 413, NDJSON to a plain endpoint with 400', async (ctx) => {
    const bad = await call(ctx, 'stream', '/stream/Numbers.Sum', streamed('1\n{oops\n'));
    assert.is(bad.status, 400, 'a line that is no JSON');
    const long = `"${'x'.repeat(1_048_576 - 1)}"\n`;
    const over = await call(ctx, 'stream', '/stream/Numbers.Sum', streamed(`1\n${long}`));
    assert.is(over.status, 413, 'a line over the body limit');
    const plain = await call(ctx, 'helloworld', '/helloworld/Greeter.Hello', streamed('{"name":"Ada"}\n'));
    assert.is(plain.status, 400, 'an endpoint that takes no request stream');
    // helloworld's bundle is built without streams, where an NDJSON body is an unsupported content type.
    assert.match(((await plain.json()) as { detail: string }).detail, /takes no request stream|content type/);
  });

  test('answers a client stream that fails at its first message with 400 while its caller sends 10,000 more lines', async (ctx) => {
    const body = pulled((i) => (i === 0 ? '"x"\n' : i <= 10_000 ? `${i}\n` : undefined));
    const res = await call(ctx, 'stream', '/stream/Numbers.Sum', streamed(body.stream));
    assert.is(res.status, 400);
    assert.match(((await res.json()) as { detail: string }).detail, 'message 1 is not a number');
    assert.is(body.seen.made, 10_001, 'the whole request was sent: the host read the rest and threw it away');
  });

  test('echoes a bidi stream full duplex: each reply read before the next message is made (5 round trips)', async (ctx) => {
    let answered: () => void = () => {};
    const body = pulled(async (i) => {
      if (i > 0) await new Promise<void>((resolve) => (answered = resolve));
      return i < 5 ? `${i + 1}\n` : undefined;
    });
    const res = await call(ctx, 'stream', '/stream/Chat.Echo', streamed(body.stream));
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    for (;;) {
      const { done, value } = await withTimeout(reader.read(), 15_000, 'a reply while the request is open');
      if (done) break;
      text += value;
      answered();
    }
    assert.equal(
      lines(text),
      [1, 2, 3, 4, 5].map((n) => ({ echo: n })),
    );
  });

  test('ends a stream that fails after 2 items with the error: SSE error event 409, an NDJSON body cut', async (ctx) => {
    const sse = await call(ctx, 'streamprobe', '/streamprobe/Probe.Fail', {
      method: 'POST',
      body: '{"after":2}',
      headers: { ...json, accept: 'text/event-stream' },
    });
    const { text } = await readAll(sse);
    const [first, second, end] = text.split('\n\n');
    assert.equal([first, second], ['data: {"i":0}', 'data: {"i":1}']);
    assert.match(end!, /^event: error\ndata: /);
    assert.is((JSON.parse(end!.split('data: ')[1]!) as { code: number }).code, 409);
    const plain = await call(ctx, 'streamprobe', '/streamprobe/Probe.Fail', {
      method: 'POST',
      body: '{"after":2}',
      headers: json,
    });
    const cut = await readAll(plain);
    assert.equal(lines(cut.text), [{ i: 0 }, { i: 1 }]);
    if (kit.ndjsonErrorLooksClean) {
      console.log(
        `  (${name}: an NDJSON reply that fails mid-stream ends like a clean one: ${kit.ndjsonErrorLooksClean})`,
      );
      assert.not.ok(
        cut.error,
        `${name} closes an errored body normally: if it now cuts it, drop ndjsonErrorLooksClean`,
      );
    } else assert.ok(cut.error, 'the NDJSON body errors: the caller never sees a clean end');
  });

  test('a caller that stops reading after 2 items cancels the stream: the signal fires, the generator returns', async (ctx) => {
    const res = await call(ctx, 'streamprobe', '/streamprobe/Probe.Forever', {
      method: 'POST',
      body: '{}',
      headers: json,
    });
    const reader = res.body!.getReader();
    await withTimeout(reader.read(), 10_000, 'the first item');
    await reader.cancel();
    await logged(ctx, 'streamprobe', 'stream-probe: Forever signal fired');
    await logged(ctx, 'streamprobe', 'stream-probe: Forever returned');
  });

  test('a bidi handler that ends after 1 message ends the reply cleanly while its caller still sends', async (ctx) => {
    const body = pulled((i) => (i < 100_000 ? `${i}\n` : undefined));
    const res = await call(ctx, 'streamprobe', '/streamprobe/Probe.First', streamed(body.stream));
    const { text, error } = await readAll(res);
    assert.not.ok(error, 'a clean end');
    assert.equal(lines(text), [{ first: 0 }]);
  });

  test('WebSocket: echoes Chat.Echo: metadata first, 2 text frames, end with trailers, close 1000', async (ctx) => {
    const result = await socket(
      ctx,
      'streamprobe',
      `/streamprobe/Probe.Chat?metadata=${encodeURIComponent('{"x-question":"hi"}')}`,
      {
        send: ['"a"', '{"b":2}'],
        end: true,
      },
    );
    assert.not.ok(result.refused);
    const first = control(result.frames[0]);
    assert.is(
      (first?.metadata as Record<string, string>)?.['x-asked'],
      'hi',
      '?metadata= reached the handler, its answer came first',
    );
    assert.equal(texts(result), [{ echo: 'a' }, { echo: { b: 2 } }]);
    assert.equal(control(result.frames.at(-1)), { end: true, trailers: { 'x-count': '2' } });
    assert.is(result.frames.length, 4);
    assert.is(result.code, 1000);
  });

  test('WebSocket: a server stream takes its request as the first message; a client stream its messages', async (ctx) => {
    const count = await socket(ctx, 'stream', '/stream/Countdown.Count', { send: ['{"from":2,"delay":1}'], end: true });
    assert.is((control(count.frames[0])?.metadata as Record<string, string>)['x-countdown-from'], '2');
    assert.equal(texts(count), [{ n: 2 }, { n: 1 }]);
    assert.equal(control(count.frames.at(-1)), { end: true, trailers: { 'x-countdown': 'done' } });
    const sum = await socket(ctx, 'stream', '/', { send: ['1', '2', '3'], end: true }).catch(() => undefined);
    assert.is(sum?.refused?.status, 400, 'GET / names no endpoint without Micro-* headers: refused before the upgrade');
    const summed = await socket(ctx, 'stream', '/stream/Numbers.Sum', { send: ['1', '2', '3'], end: true });
    assert.equal(texts(summed), [{ sum: 6, count: 3 }]);
    assert.equal(control(summed.frames.at(-1)), { end: true, trailers: {} });
  });

  test('WebSocket: an error after 2 items is the error control 409, then close 1000', async (ctx) => {
    const result = await socket(ctx, 'streamprobe', '/streamprobe/Probe.Fail', { send: ['{"after":2}'], end: true });
    assert.equal(texts(result), [{ i: 0 }, { i: 1 }]);
    const last = control(result.frames.at(-1));
    assert.is((last?.error as { code: number }).code, 409);
    assert.is(result.code, 1000);
  });

  test('WebSocket: refuses before the upgrade, as HTTP error JSON: an unknown endpoint 404, bad ?metadata= 400, a plain one 400', async (ctx) => {
    const unknown = await socket(ctx, 'stream', '/stream/Chat.Nope', { send: [] });
    assert.is(unknown.refused?.status, 404);
    assert.is((JSON.parse(unknown.refused!.body) as { code: number }).code, 404);
    const metadata = await socket(ctx, 'stream', '/stream/Chat.Echo?metadata=%5B1%5D', { send: [] });
    assert.is(metadata.refused?.status, 400, '?metadata= that is no JSON object of strings');
    const plain = await socket(ctx, 'helloworld', '/helloworld/Greeter.Hello', { send: [] });
    // 400 (no stream endpoint), or 405 from a bundle built without streams, where a GET is no call.
    assert.ok([400, 405].includes(plain.refused?.status ?? 0), `a plain endpoint: ${plain.refused?.status}`);
    assert.type((JSON.parse(plain.refused!.body) as { detail: unknown }).detail, 'string');
  });

  test('WebSocket: a text frame that is no JSON ends the stream with a 400 error control', async (ctx) => {
    const result = await socket(ctx, 'stream', '/stream/Chat.Echo', { send: ['"ok"', '{oops'], end: true });
    assert.equal(texts(result), [{ echo: 'ok' }]);
    assert.is((control(result.frames.at(-1))?.error as { code: number }).code, 400);
  });

  test('WebSocket: a caller that closes after 1 reply cancels the stream: the handler signal fires', async (ctx) => {
    const leaving = `/streamprobe/Probe.Chat?metadata=${encodeURIComponent('{"x-question":"leaving"}')}`;
    const result = await socket(ctx, 'streamprobe', leaving, { send: ['1'], closeAfter: 1 });
    assert.equal(texts(result), [{ echo: 1 }]);
    await logged(ctx, 'streamprobe', 'stream-probe: Chat (leaving) signal fired');
    await logged(ctx, 'streamprobe', 'stream-probe: Chat (leaving) returned');
  });
}
