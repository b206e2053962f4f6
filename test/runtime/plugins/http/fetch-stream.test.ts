/**
 * Request streams on fetch hosts (Workers, Deno): a chunked NDJSON `request.body` read as the handler asks
 * (BodyRequestStream), and the fetch handler serving client and bidi streams with it. Workers and Deno run the same
 * again in the target contract suite.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MicroError, Runner, errors, type ServiceDefinition } from '../../../../runtime/core/index.js';
import { createFetchHandler } from '../../../../runtime/plugins/http/fetch.js';
import { BodyRequestStream } from '../../../../runtime/plugins/http/fetch-stream.js';
import { LINGER_BYTES } from '../../../../runtime/plugins/http/read-all.js';
import { withTimeout } from '../../../helpers.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A pulled body of `chunks`, counting the chunks read and whether it was cancelled. */
function body(chunks: string[], fail?: Error) {
  const seen = { pulls: 0, cancelled: false };
  let i = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        seen.pulls++;
        if (i < chunks.length) controller.enqueue(encoder.encode(chunks[i++]));
        else if (fail) controller.error(fail);
        else controller.close();
      },
      cancel() {
        seen.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

const CHUNK = 65_536;
/** An endless body of 64 KiB chunks of lines (`1\n`), counting the chunks made and whether it was cancelled. */
function endless() {
  const seen = { made: 0, cancelled: false };
  const chunk = encoder.encode('1\n'.repeat(CHUNK / 2));
  const stream = new ReadableStream<Uint8Array>(
    {
      pull: (controller) => void (seen.made++, controller.enqueue(chunk)),
      cancel: () => void (seen.cancelled = true),
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

async function linesOf(stream: BodyRequestStream): Promise<string[]> {
  const out: string[] = [];
  for await (const line of stream) out.push(decoder.decode(line));
  return out;
}

async function rejection(work: Promise<unknown>): Promise<MicroError> {
  try {
    await withTimeout(work);
  } catch (err) {
    if (err instanceof MicroError) return err;
    throw err;
  }
  throw new Error('expected a MicroError');
}

// ---
const stream = suite('BodyRequestStream');

stream(
  'yields the lines of a chunked body: split across chunks, blank lines skipped, CRLF, no final newline',
  async () => {
    const { stream: b } = body(['1\n{"a"', ':2}\r\n\n', '"x"\n3']);
    const s = new BodyRequestStream(b, 100, 'svc');
    assert.equal(await withTimeout(linesOf(s)), ['1', '{"a":2}', '"x"', '3']);
    assert.equal(await s.end, { trailers: (await s.end).trailers }, 'ended cleanly');
  },
);

stream('reads the next chunk only when the reader asks: 1 message taken, at most 2 of 100 chunks pulled', async () => {
  const { stream: b, seen } = body(Array.from({ length: 100 }, (_, i) => `${i}\n`));
  const s = new BodyRequestStream(b, 100, 'svc');
  const first = await withTimeout(s.next());
  assert.is(decoder.decode(first.value as Uint8Array), '0');
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(seen.pulls <= 2, `${seen.pulls} chunks pulled for 1 message`);
  await s.return();
  assert.equal(await s.next(), { done: true, value: undefined });
  await withTimeout(s.drained);
  assert.is(seen.pulls, 101, 'return() read the rest of a short body and threw it away (so its caller finishes)');
});

stream(
  `return() throws away at most LINGER_BYTES (${LINGER_BYTES >> 20} MiB) of an endless body, then cancels it`,
  async () => {
    const { stream: b, seen } = endless();
    const s = new BodyRequestStream(b, 100, 'svc');
    await withTimeout(s.next());
    await s.return();
    await withTimeout(s.drained);
    assert.ok(seen.cancelled, 'cancelled');
    assert.ok(seen.made * CHUNK <= LINGER_BYTES + 2 * CHUNK, `${seen.made} chunks of 64 KiB read`);
  },
);

stream('ends with a 413 after the lines before a line over the bound (2 lines, then 413)', async () => {
  const s = new BodyRequestStream(body(['1\n2\n', 'x'.repeat(11), '\n4\n']).stream, 10, 'svc');
  const out: string[] = [];
  const error = await rejection(
    (async () => {
      for await (const line of s) out.push(decoder.decode(line));
    })(),
  );
  assert.equal(out, ['1', '2']);
  assert.is(error.code, 413);
  assert.is((await s.end).error?.code, 413, 'end says the same');
});

stream('a last line over the bound without a newline is a 413 too', async () => {
  const s = new BodyRequestStream(body(['1\n', 'x'.repeat(11)]).stream, 10, 'svc');
  assert.is((await s.next()).done, false);
  assert.is((await rejection(s.next())).code, 413);
});

stream('a body cut mid-way (the caller went) ends the stream with a 400', async () => {
  const s = new BodyRequestStream(body(['1\n'], new Error('connection lost')).stream, 10, 'svc');
  const error = await rejection(linesOf(s));
  assert.is(error.code, 400);
  assert.match(error.detail, 'before its end');
});

stream('a request without a body is an empty stream', async () => {
  assert.equal(await withTimeout(linesOf(new BodyRequestStream(null, 10, 'svc'))), []);
});

stream.run();

// ---
const handler = suite('createFetchHandler: request streams');

interface Seen {
  stopped: number;
  signal?: string;
}

function numbers(seen: Seen): ServiceDefinition {
  return {
    name: 'numbers',
    streams: { 'Numbers.Sum': 'client', 'Numbers.Echo': 'bidi', 'Numbers.First': 'bidi' },
    handlers: {
      Numbers: {
        async Sum(input: AsyncIterable<unknown>) {
          let sum = 0;
          let count = 0;
          for await (const n of input) {
            if (typeof n !== 'number') throw errors.badRequest('numbers', `message ${count + 1} is not a number`);
            sum += n;
            count++;
          }
          return { sum, count };
        },
        async *Echo(input: AsyncIterable<unknown>) {
          for await (const m of input) yield { echo: m };
        },
        async *First(input: AsyncIterable<unknown>) {
          for await (const m of input) {
            yield m;
            return;
          }
        },
        Plain: () => ({ ok: true }),
      },
    },
    afterStop: () => void seen.stopped++,
  };
}

const none = async () => ({ transports: [], close: async () => {} });
const ndjson = (path: string, b: ReadableStream<Uint8Array> | string) =>
  new Request(`http://fn.test${path}`, {
    method: 'POST',
    body: b,
    headers: { 'content-type': 'application/x-ndjson' },
    duplex: 'half',
  } as RequestInit);

handler('sums a client stream of 1,000 numbers sent in 100 chunks, and stops the function once', async () => {
  const seen: Seen = { stopped: 0 };
  const handle = createFetchHandler(new Runner(numbers(seen), { env: {}, plugins: none }));
  const chunks = Array.from({ length: 100 }, (_, c) =>
    Array.from({ length: 10 }, (_, i) => `${c * 10 + i + 1}\n`).join(''),
  );
  const res = await withTimeout(handle(ndjson('/numbers/Numbers.Sum', body(chunks).stream)));
  assert.is(res.status, 200);
  assert.equal(await res.json(), { sum: 500500, count: 1000 });
  assert.is(seen.stopped, 1);
});

handler('answers a line that is no JSON with 400, a line over the body limit with 413', async () => {
  const handle = createFetchHandler(new Runner(numbers({ stopped: 0 }), { env: {}, plugins: none }), {
    maxBodySize: 16,
  });
  const bad = await withTimeout(handle(ndjson('/numbers/Numbers.Sum', '1\n{oops\n3\n')));
  assert.is(bad.status, 400, await bad.clone().text());
  const long = await withTimeout(handle(ndjson('/numbers/Numbers.Sum', `1\n${'1'.repeat(17)}\n`)));
  assert.is(long.status, 413, await long.clone().text());
});

handler('answers an NDJSON body to an endpoint that takes none with 400, and reads 8 MiB of it at most', async () => {
  const seen: Seen = { stopped: 0 };
  const handle = createFetchHandler(new Runner(numbers(seen), { env: {}, plugins: none }));
  const { stream: b, seen: read } = endless();
  const res = await withTimeout(handle(ndjson('/numbers/Numbers.Plain', b)));
  assert.is(res.status, 400);
  assert.match(((await res.json()) as { detail: string }).detail, 'takes no request stream');
  await withTimeout(
    (async () => {
      while (!read.cancelled) await new Promise((r) => setTimeout(r, 5));
    })(),
  );
  assert.ok(read.made * CHUNK <= LINGER_BYTES + 2 * CHUNK, `${read.made} chunks of 64 KiB read, then cancelled`);
});

handler('answers a bidi stream while its request is still being sent (full duplex: 5 round trips)', async () => {
  const seen: Seen = { stopped: 0 };
  const handle = createFetchHandler(new Runner(numbers(seen), { env: {}, plugins: none }));
  // The next request message is made only once the reply to the last one was read.
  let answered: () => void = () => {};
  let sent = 0;
  const request = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (sent > 0) await new Promise<void>((resolve) => (answered = resolve));
        if (sent === 5) return controller.close();
        controller.enqueue(encoder.encode(`${++sent}\n`));
      },
    },
    { highWaterMark: 0 },
  );
  const res = await withTimeout(handle(ndjson('/numbers/Numbers.Echo', request)));
  assert.is(res.headers.get('content-type'), 'application/x-ndjson');
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  for (;;) {
    const { done, value } = await withTimeout(reader.read());
    if (done) break;
    text += value;
    answered();
  }
  assert.is(text, [1, 2, 3, 4, 5].map((n) => `{"echo":${n}}\n`).join(''));
});

handler(
  'a bidi handler that returns early ends the reply cleanly; the rest of its request is thrown away, 8 MiB at most',
  async () => {
    const seen: Seen = { stopped: 0 };
    const handle = createFetchHandler(new Runner(numbers(seen), { env: {}, plugins: none }));
    const { stream: b, seen: read } = endless();
    const res = await withTimeout(handle(ndjson('/numbers/Numbers.First', b)));
    assert.is(await withTimeout(res.text()), '1\n');
    await withTimeout(
      (async () => {
        while (seen.stopped === 0) await new Promise((r) => setTimeout(r, 5));
      })(),
    );
    assert.ok(read.cancelled, 'the endless request body was cancelled');
    assert.ok(read.made * CHUNK <= LINGER_BYTES + 2 * CHUNK, `${read.made} chunks of 64 KiB read`);
  },
);

handler.run();
