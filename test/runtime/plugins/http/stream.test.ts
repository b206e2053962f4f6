/** Streams over HTTP on 127.0.0.1: the listener's NDJSON and SSE, request streams, and client.stream over fetch. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import {
  Client,
  Dispatcher,
  Router,
  errors,
  jsonCodec,
  type Context,
  type ServiceDefinition,
} from '../../../../runtime/core/index.js';
import {
  createHttpListener,
  type HttpListener,
  type HttpListenerOptions,
} from '../../../../runtime/plugins/http/listener.js';
import { createHttpTransport } from '../../../../runtime/plugins/http/index.js';
import { eventually, rejects, sleep, withTimeout } from '../../../helpers.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** What the handlers saw, for the assertions. */
const seen = { produced: 0, aborted: false, finallyRan: false, received: [] as number[], lateAborted: false };

const definition: ServiceDefinition = {
  name: 'stream',
  handlers: {
    Countdown: {
      async *Count(req: { from: number; delay?: number }, ctx: Context) {
        ctx.responseMetadata.set('x-from', String(req.from));
        for (let n = req.from; n > 0; n--) {
          if (req.delay) await sleep(req.delay);
          yield { n };
        }
        ctx.trailers.set('x-total', String(req.from));
      },
      async *Fail() {
        yield { n: 1 };
        yield { n: 2 };
        throw errors.conflict('stream', 'gave up after 2');
      },
      async *Refuse(): AsyncGenerator<number> {
        throw errors.conflict('stream', 'not now');
      },
      async *Late(_req: unknown, ctx: Context) {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        seen.lateAborted = true;
        yield 1;
      },
      async *Forever(req: { size?: number }, ctx: Context) {
        seen.produced = 0;
        seen.aborted = false;
        seen.finallyRan = false;
        ctx.signal.addEventListener('abort', () => (seen.aborted = true));
        const pad = 'x'.repeat(req.size ?? 0);
        try {
          for (;;) yield { n: seen.produced++, pad };
        } finally {
          seen.finallyRan = true;
        }
      },
    },
    Numbers: {
      async Sum(numbers: AsyncIterable<number>) {
        seen.received = [];
        let sum = 0;
        for await (const n of numbers) {
          seen.received.push(n);
          sum += n;
        }
        return { sum, count: seen.received.length };
      },
    },
    Chat: {
      async *Echo(inbox: AsyncIterable<{ text: string }>) {
        for await (const m of inbox) yield { echo: m.text };
      },
    },
  },
  streams: { 'Numbers.Sum': 'client', 'Chat.Echo': 'bidi' },
};

let listener: HttpListener;
let address = '';
const client = new Client({ transports: [createHttpTransport()], timeout: 10_000 });

async function start(options: HttpListenerOptions = {}): Promise<void> {
  const dispatcher = new Dispatcher({
    service: 'stream',
    router: new Router(definition),
    codecs: [jsonCodec],
    logger: quiet,
    client: new Client(),
    broker: undefined,
    env: {},
  });
  listener = await createHttpListener(async (request, reply) => reply(await dispatcher.handle(request)), options);
  address = listener.address;
}

/** One request on its own connection; the response as it arrives. */
function open(
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<IncomingMessage> {
  return withTimeout(
    new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(new URL(path, address), {
        method: options.method ?? 'POST',
        headers: { 'content-type': 'application/json', ...options.headers },
        agent: false,
      });
      req.on('response', resolve).on('error', reject);
      req.end(options.body);
    }),
  );
}

async function text(res: IncomingMessage): Promise<string> {
  let out = '';
  for await (const chunk of res) out += String(chunk);
  return out;
}

// ---
const listen = suite('HttpListener: streamed replies');
listen.before(() => start());
listen.after(() => listener.close());

listen(
  'writes a server stream as NDJSON, one value per line, with the metadata as headers and trailers after',
  async () => {
    const res = await open('/stream/Countdown.Count', { body: '{"from":3}' });
    assert.is(res.statusCode, 200);
    assert.is(res.headers['content-type'], 'application/x-ndjson');
    assert.is(res.headers['x-from'], '3');
    assert.is(await text(res), '{"n":3}\n{"n":2}\n{"n":1}\n');
    assert.is(res.trailers['micro-status'], '200');
    assert.is(res.trailers['x-total'], '3');
  },
);

listen(
  'ends an NDJSON stream that fails after 2 items with Micro-Status 409 and the error JSON in Micro-Error',
  async () => {
    const res = await open('/stream/Countdown.Fail', { body: '{}' });
    assert.is(await text(res), '{"n":1}\n{"n":2}\n');
    assert.is(res.trailers['micro-status'], '409');
    assert.equal(JSON.parse(res.trailers['micro-error']!), {
      id: 'stream',
      code: 409,
      detail: 'gave up after 2',
      status: 'Conflict',
    });
  },
);

listen('answers an error before the first item as a plain error reply', async () => {
  const res = await open('/stream/Countdown.Refuse', { body: '{}' });
  assert.is(res.statusCode, 409);
  assert.is(res.headers['content-type'], 'application/json');
  assert.is(JSON.parse(await text(res)).detail, 'not now');
});

listen(
  'serves an EventSource: GET with the request in ?request= and Accept: text/event-stream, closed by an end event',
  async () => {
    const res = await open(`/stream/Countdown.Count?request=${encodeURIComponent('{"from":2}')}`, {
      method: 'GET',
      headers: { accept: 'text/event-stream' },
    });
    assert.is(res.statusCode, 200);
    assert.is(res.headers['content-type'], 'text/event-stream');
    assert.is(await text(res), 'data: {"n":2}\n\ndata: {"n":1}\n\nevent: end\ndata: {"x-total":"2"}\n\n');
  },
);

listen('closes an SSE stream that fails with an error event holding the error JSON', async () => {
  const res = await open('/stream/Countdown.Fail', { headers: { accept: 'text/event-stream' }, body: '{}' });
  const body = await text(res);
  assert.match(body, /^data: \{"n":1\}\n\ndata: \{"n":2\}\n\nevent: error\ndata: \{"id":"stream","code":409,/);
});

listen('refuses a GET without Accept: text/event-stream (405)', async () => {
  const res = await open('/stream/Countdown.Count', { method: 'GET' });
  assert.is(res.statusCode, 405);
  await text(res);
});

listen('reads a chunked NDJSON request body as a client stream (1,000 messages, in order)', async () => {
  const res = await withTimeout(
    new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(new URL('/stream/Numbers.Sum', address), {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        agent: false,
      });
      req.on('response', resolve).on('error', reject);
      for (let i = 0; i < 1000; i += 100) req.write(Array.from({ length: 100 }, (_, j) => `${i + j}\n`).join('')); // lines across chunk borders too
      req.end();
    }),
  );
  assert.equal(JSON.parse(await text(res)), { sum: 499500, count: 1000 });
  assert.equal(
    seen.received,
    Array.from({ length: 1000 }, (_, i) => i),
  );
});

listen('ends a client stream at a line that is no JSON with a 400', async () => {
  const res = await open('/stream/Numbers.Sum', {
    headers: { 'content-type': 'application/x-ndjson' },
    body: '1\n{oops\n3\n',
  });
  assert.is(res.statusCode, 400);
  assert.match(await text(res), /request stream/);
});

listen('refuses an NDJSON body to an endpoint that takes no request stream (400)', async () => {
  const res = await open('/stream/Countdown.Count', {
    headers: { 'content-type': 'application/x-ndjson' },
    body: '{"from":1}\n',
  });
  assert.is(res.statusCode, 400);
  assert.match(await text(res), /takes no request stream/);
});

listen(
  'cancels the stream when the caller closes the connection: the handler signal fires and its finally runs',
  async () => {
    const res = await open('/stream/Countdown.Forever', { body: '{}' });
    let lines = 0;
    await new Promise<void>((resolve) => {
      res.on('data', (c: Buffer) => {
        lines += c.toString().split('\n').length - 1;
        if (lines >= 3) {
          res.destroy();
          resolve();
        }
      });
    });
    await eventually(() => seen.finallyRan && seen.aborted);
  },
);

listen('a caller that closes the connection before the first item fires the handler signal', async () => {
  seen.lateAborted = false;
  const req = httpRequest(new URL('/stream/Countdown.Late', address), { method: 'POST', agent: false });
  req.on('error', () => {});
  req.end('{}');
  await sleep(100);
  req.destroy();
  await eventually(() => seen.lateAborted);
});

listen(
  'keeps a handler waiting while its reader does not read: 1 KiB items produced stay under 10,000 (10 MiB of socket buffers) of 100,000',
  async () => {
    const res = await open('/stream/Countdown.Forever', { body: '{"size":1000}' });
    res.pause();
    await sleep(300);
    const before = seen.produced;
    await sleep(300);
    const after = seen.produced;
    assert.ok(after < 10_000, `produced ${after} items while nothing was read`);
    assert.is(after, before, 'the handler waits at its yield');
    res.destroy();
    await eventually(() => seen.finallyRan);
  },
);

listen.run();

// ---
const stream = suite('Client.stream over HTTP');
stream.before(() => start());
stream.after(() => listener.close());

stream('reads a server stream as it comes, with metadata before and trailers after (3 items)', async () => {
  const count = client.stream<{ n: number }>('stream', 'Countdown.Count', { from: 3 }, { address });
  const got: number[] = [];
  for await (const { n } of count) got.push(n);
  assert.equal(got, [3, 2, 1]);
  assert.is((await count.metadata).get('x-from'), '3');
  const end = await count.end;
  assert.is(end.error, undefined);
  assert.is(end.trailers.get('x-total'), '3');
});

stream('throws the error a stream ends with after 2 items, and end carries it', async () => {
  const s = client.stream<{ n: number }>('stream', 'Countdown.Fail', {}, { address });
  const got: number[] = [];
  let thrown: { code?: number; detail?: string } | undefined;
  try {
    for await (const { n } of s) got.push(n);
  } catch (err) {
    thrown = err as typeof thrown;
  }
  assert.equal(got, [1, 2]);
  assert.is(thrown?.code, 409);
  assert.is(thrown?.detail, 'gave up after 2');
  assert.is((await s.end).error?.code, 409);
});

stream('throws an error before the first item; metadata rejects with it', async () => {
  const s = client.stream('stream', 'Countdown.Refuse', {}, { address });
  assert.is(((await rejects(() => s.metadata)) as { code?: number }).code, 409);
  let thrown: { code?: number } | undefined;
  try {
    for await (const _ of s) assert.unreachable();
  } catch (err) {
    thrown = err as typeof thrown;
  }
  assert.is(thrown?.code, 409);
});

stream('sends a client stream from an async generator (1,000 messages, in order) and reads its one reply', async () => {
  async function* numbers() {
    for (let i = 0; i < 1000; i++) yield i;
  }
  const replies: unknown[] = [];
  for await (const r of client.stream('stream', 'Numbers.Sum', numbers(), { address })) replies.push(r);
  assert.equal(replies, [{ sum: 499500, count: 1000 }]);
  assert.equal(
    seen.received,
    Array.from({ length: 1000 }, (_, i) => i),
  );
});

stream(
  'runs a bidi echo full duplex with send() and close(): each reply comes before the next send (5 messages)',
  async () => {
    const chat = client.stream<{ echo: string }, { text: string }>('stream', 'Chat.Echo', undefined, {
      address,
      send: true,
    });
    const it = chat[Symbol.asyncIterator]();
    for (const text of ['a', 'b', 'c', 'd', 'e']) {
      await chat.send({ text });
      assert.equal((await withTimeout(it.next())).value, { echo: text });
    }
    chat.close();
    assert.ok((await withTimeout(it.next())).done);
  },
);

stream(
  'a reader that stops after 3 items of an endless stream cancels the handler, which ran ahead by under 20,000 items (the socket buffers: ~30 bytes each)',
  async () => {
    let read = 0;
    for await (const _ of client.stream('stream', 'Countdown.Forever', {}, { address })) if (++read === 3) break;
    await eventually(() => seen.finallyRan && seen.aborted);
    assert.ok(seen.produced < 20_000, `produced ${seen.produced}`);
  },
);

stream(
  'a slow client.stream reader keeps the handler waiting: 1 KiB items produced stay under 10,000 while it reads none',
  async () => {
    const s = client.stream('stream', 'Countdown.Forever', { size: 1000 }, { address });
    const it = s[Symbol.asyncIterator]();
    await it.next();
    await sleep(300);
    const before = seen.produced;
    await sleep(300);
    assert.ok(seen.produced < 10_000, `produced ${seen.produced}`);
    assert.is(seen.produced, before, 'the handler waits at its yield');
    await it.return!();
    await eventually(() => seen.finallyRan);
  },
);

stream('the client timeout bounds the whole stream: a slow countdown ends with a 408', async () => {
  const s = client.stream('stream', 'Countdown.Count', { from: 50, delay: 20 }, { address, timeout: 200 });
  let thrown: { code?: number } | undefined;
  let got = 0;
  try {
    for await (const _ of s) got++;
  } catch (err) {
    thrown = err as typeof thrown;
  }
  assert.ok(got > 0 && got < 50, `read ${got}`);
  assert.is(thrown?.code, 408);
});

stream.run();

// ---
const long = suite('HttpListener: a request stream outlives the request timeout');
long.before(() => start({ headersTimeout: 300, requestTimeout: 600 }));
long.after(() => listener.close());

long('keeps a bidi stream open past requestTimeout (600 ms): 4 messages 400 ms apart all echo', async () => {
  const chat = client.stream<{ echo: string }, { text: string }>('stream', 'Chat.Echo', undefined, {
    address,
    send: true,
  });
  const it = chat[Symbol.asyncIterator]();
  for (const text of ['a', 'b', 'c', 'd']) {
    await chat.send({ text });
    assert.equal((await withTimeout(it.next())).value, { echo: text });
    await sleep(400);
  }
  chat.close();
  assert.ok((await withTimeout(it.next())).done);
});

long.run();
