/** Streaming endpoints in the core: Router (which endpoints stream), Dispatcher (running them), MicroFunction. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Client,
  Dispatcher,
  Metadata,
  Router,
  createFunction,
  errors,
  jsonCodec,
  type Context,
  type MessageStream,
  type ServerRequest,
  type ServiceDefinition,
  type StreamEnd,
} from '../../../runtime/index.js';
import { eventually, sleep, withTimeout } from '../../helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function request(endpoint: string, body: unknown = {}, metadata = new Metadata()): ServerRequest {
  return {
    id: 'r1',
    service: 'fn',
    endpoint,
    contentType: 'application/json',
    body: enc.encode(JSON.stringify(body)),
    metadata,
  };
}

/** A request stream of `values`, pulled; `pulled` counts the messages read. */
function messages(values: unknown[]): MessageStream & { pulled: number; cancelled: boolean } {
  let end!: (e: StreamEnd) => void;
  const s = {
    pulled: 0,
    cancelled: false,
    end: new Promise<StreamEnd>((r) => (end = r)),
    [Symbol.asyncIterator]() {
      return {
        next: async () => {
          if (s.pulled >= values.length) {
            end({ trailers: new Metadata() });
            return { done: true as const, value: undefined };
          }
          return { done: false as const, value: enc.encode(JSON.stringify(values[s.pulled++])) };
        },
        return: async () => {
          s.cancelled = true;
          end({ trailers: new Metadata() });
          return { done: true as const, value: undefined };
        },
      };
    },
  };
  return s;
}

function rawMessages(lines: string[]): MessageStream {
  const s = messages([]);
  let i = 0;
  return {
    end: s.end,
    [Symbol.asyncIterator]: () => ({
      next: async () =>
        i < lines.length ? { done: false, value: enc.encode(lines[i++]) } : { done: true, value: undefined },
    }),
  };
}

async function collect(stream: MessageStream | undefined): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const m of stream!) out.push(JSON.parse(dec.decode(m)));
  return out;
}

function dispatcher(definition: ServiceDefinition, timeout?: number) {
  return new Dispatcher({
    service: definition.name,
    router: new Router(definition),
    codecs: [jsonCodec],
    logger: quiet,
    client: new Client(),
    broker: undefined,
    env: {},
    ...(timeout ? { timeout } : {}),
  });
}

// ---
const router = suite('Router: streaming endpoints');

router('lists an async generator as a server stream, and declared client and bidi endpoints', () => {
  const r = new Router({
    name: 'fn',
    handlers: {
      N: {
        async *Count() {},
        async Sum(_n: AsyncIterable<number>) {},
        async *Echo() {},
        Plain() {},
        Iter() {
          return { [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }) };
        },
      },
    },
    streams: { 'N.Sum': 'client', 'N.Echo': 'bidi', 'N.Iter': 'server' },
  });
  assert.equal(
    r.endpoints().map((e) => [e.name, e.metadata.stream]),
    [
      ['N.Count', 'server'],
      ['N.Sum', 'client'],
      ['N.Echo', 'bidi'],
      ['N.Plain', undefined],
      ['N.Iter', 'server'],
    ],
  );
});

router('tells a generator method of a class instance apart (before binding)', () => {
  class Counter {
    async *Count() {}
  }
  assert.is(new Router({ name: 'fn', handlers: { C: new Counter() } }).stream('C.Count'), 'server');
});

router(
  'refuses a streams entry for an endpoint that does not exist, a bad kind, and a generator declared client',
  () => {
    const handlers = { N: { async *Count() {}, Plain() {} } };
    assert.throws(() => new Router({ name: 'fn', handlers, streams: { 'N.Nope': 'client' } }), /no endpoint/);
    assert.throws(() => new Router({ name: 'fn', handlers, streams: { 'N.Plain': 'up' as 'client' } }), /'server'/);
    assert.throws(() => new Router({ name: 'fn', handlers, streams: { 'N.Count': 'client' } }), /bidi/);
  },
);

router.run();

// ---
const server = suite('Dispatcher: server streams');

server(
  'sends metadata set before the first item with the reply, the items in order, trailers after (3 items)',
  async () => {
    const d = dispatcher({
      name: 'fn',
      handlers: {
        N: {
          async *Count(req: { from: number }, ctx: Context) {
            ctx.responseMetadata.set('X-Before', 'yes');
            for (let n = req.from; n > 0; n--) yield { n };
            ctx.trailers.set('X-Total', String(req.from));
          },
        },
      },
    });
    const res = await d.handle(request('N.Count', { from: 3 }));
    assert.is(res.status, 200);
    assert.is(res.metadata.get('X-Before'), 'yes');
    assert.ok(res.stream);
    assert.equal(await collect(res.stream), [{ n: 3 }, { n: 2 }, { n: 1 }]);
    const end = await res.stream.end;
    assert.is(end.error, undefined);
    assert.is(end.trailers.get('X-Total'), '3');
  },
);

server('answers an error thrown before the first item as a plain error reply with its status', async () => {
  const d = dispatcher({
    name: 'fn',
    handlers: {
      N: {
        async *Count(): AsyncGenerator<number> {
          throw errors.conflict('fn', 'not now');
        },
      },
    },
  });
  const res = await d.handle(request('N.Count'));
  assert.is(res.status, 409);
  assert.is(res.stream, undefined);
  assert.equal(JSON.parse(dec.decode(res.body)), { id: 'fn', code: 409, detail: 'not now', status: 'Conflict' });
});

server(
  'ends the stream with the error thrown after 2 items; a non-MicroError reaches the caller as a 500 without its message',
  async () => {
    const d = dispatcher({
      name: 'fn',
      handlers: {
        N: {
          async *Count() {
            yield 1;
            yield 2;
            throw new Error('secret');
          },
        },
      },
    });
    const res = await d.handle(request('N.Count'));
    const got: unknown[] = [];
    let thrown: unknown;
    try {
      for await (const m of res.stream!) got.push(JSON.parse(dec.decode(m)));
    } catch (err) {
      thrown = err;
    }
    assert.equal(got, [1, 2]);
    assert.equal((thrown as { toJSON(): unknown }).toJSON(), {
      id: 'fn',
      code: 500,
      detail: 'internal server error',
      status: 'Internal Server Error',
    });
    assert.is((await res.stream!.end).error?.code, 500);
  },
);

server('pulls one item per read: the generator runs ahead by none (backpressure)', async () => {
  let produced = 0;
  const d = dispatcher({
    name: 'fn',
    handlers: {
      N: {
        async *Count() {
          for (;;) yield ++produced;
        },
      },
    },
  });
  const res = await d.handle(request('N.Count'));
  assert.is(produced, 1, 'the first item is pulled before the reply');
  const it = res.stream![Symbol.asyncIterator]();
  await it.next();
  await it.next();
  await sleep(20);
  assert.is(produced, 2, 'two reads, two items: the generator waits at its yield');
  await it.return!();
});

server('a reader that stops fires ctx.signal and calls the generator return() (its finally runs)', async () => {
  let aborted: unknown;
  let finallyRan = false;
  const d = dispatcher({
    name: 'fn',
    handlers: {
      N: {
        async *Count(_r: unknown, ctx: Context) {
          ctx.signal.addEventListener('abort', () => (aborted = ctx.signal.reason));
          try {
            for (let n = 0; ; n++) yield n;
          } finally {
            finallyRan = true;
          }
        },
      },
    },
  });
  const res = await d.handle(request('N.Count'));
  for await (const m of res.stream!) if (JSON.parse(dec.decode(m)) === 2) break;
  await eventually(() => finallyRan);
  assert.is((aborted as { code?: number }).code, 499);
  assert.is((await res.stream!.end).error?.code, 499);
});

server('the deadline bounds the whole stream: a slow stream ends with 408 mid-way and its signal fires', async () => {
  let aborted = false;
  const d = dispatcher(
    {
      name: 'fn',
      handlers: {
        N: {
          async *Slow(_r: unknown, ctx: Context) {
            ctx.signal.addEventListener('abort', () => (aborted = true));
            yield 0;
            await new Promise((r) => setTimeout(r, 60_000).unref());
            yield 1;
          },
        },
      },
    },
    80,
  );
  const res = await d.handle(request('N.Slow'));
  assert.is(res.status, 200);
  const got: unknown[] = [];
  let thrown: { code?: number } | undefined;
  try {
    for await (const m of res.stream!) got.push(JSON.parse(dec.decode(m)));
  } catch (err) {
    thrown = err as { code?: number };
  }
  assert.equal(got, [0]);
  assert.is(thrown?.code, 408);
  assert.ok(aborted);
});

server('a deadline passed before the first item is a plain 408 reply', async () => {
  const d = dispatcher(
    {
      name: 'fn',
      handlers: {
        N: {
          async *Slow() {
            await new Promise((r) => setTimeout(r, 60_000).unref());
            yield 1;
          },
        },
      },
    },
    50,
  );
  const res = await withTimeout(d.handle(request('N.Slow')));
  assert.is(res.status, 408);
  assert.is(res.stream, undefined);
});

server('refuses a stream endpoint called with a codec other than JSON (415)', async () => {
  const d = dispatcher({ name: 'fn', handlers: { N: { async *Count() {} } } });
  const res = await d.handle({ ...request('N.Count'), contentType: 'application/x-protobuf' });
  assert.ok(res.status === 400 || res.status === 415);
});

server.run();

// ---
const client = suite('Dispatcher: client and bidi streams');

client('hands a client-stream handler the request messages decoded, in order (1,000 messages)', async () => {
  const d = dispatcher({
    name: 'fn',
    handlers: {
      N: {
        async Sum(numbers: AsyncIterable<number>) {
          let sum = 0;
          let count = 0;
          for await (const n of numbers) {
            assert.is(n, count);
            sum += n;
            count++;
          }
          return { sum, count };
        },
      },
    },
    streams: { 'N.Sum': 'client' },
  });
  const values = Array.from({ length: 1000 }, (_, i) => i);
  const res = await d.handle({ ...request('N.Sum'), body: new Uint8Array(0), stream: messages(values) });
  assert.equal(JSON.parse(dec.decode(res.body)), { sum: 499500, count: 1000 });
});

client('ends the request stream with a 400 at a message that does not decode', async () => {
  const d = dispatcher({
    name: 'fn',
    handlers: {
      N: {
        async Sum(numbers: AsyncIterable<number>) {
          let sum = 0;
          for await (const n of numbers) sum += n;
          return sum;
        },
      },
    },
    streams: { 'N.Sum': 'client' },
  });
  const res = await d.handle({ ...request('N.Sum'), stream: rawMessages(['1', '{oops']) });
  assert.is(res.status, 400);
  assert.match(dec.decode(res.body), /request stream/);
});

client('refuses a client-stream endpoint called without a stream (400 that says how)', async () => {
  const d = dispatcher({ name: 'fn', handlers: { N: { async Sum() {} } }, streams: { 'N.Sum': 'client' } });
  const res = await d.handle(request('N.Sum', [1, 2]));
  assert.is(res.status, 400);
  assert.match(dec.decode(res.body), /x-ndjson/);
});

client('cancels the unread rest of a request stream once the handler returned (read 2 of 1,000)', async () => {
  const d = dispatcher({
    name: 'fn',
    handlers: {
      N: {
        async First(numbers: AsyncIterable<number>) {
          const got: number[] = [];
          for await (const n of numbers) if (got.push(n) === 2) break;
          return got;
        },
      },
    },
    streams: { 'N.First': 'client' },
  });
  const source = messages(Array.from({ length: 1000 }, (_, i) => i));
  const res = await d.handle({ ...request('N.First'), stream: source });
  assert.equal(JSON.parse(dec.decode(res.body)), [0, 1]);
  assert.is(source.pulled, 2);
  assert.ok(source.cancelled);
});

client('runs a bidi echo: each message read is yielded back (5 messages)', async () => {
  const d = dispatcher({
    name: 'fn',
    handlers: {
      N: {
        async *Echo(inbox: AsyncIterable<{ n: number }>) {
          for await (const m of inbox) yield { echo: m.n };
        },
      },
    },
    streams: { 'N.Echo': 'bidi' },
  });
  const res = await d.handle({ ...request('N.Echo'), stream: messages([1, 2, 3, 4, 5].map((n) => ({ n }))) });
  assert.equal(
    await collect(res.stream),
    [1, 2, 3, 4, 5].map((n) => ({ echo: n })),
  );
});

client.run();

// ---
const fn = suite('MicroFunction: a stream is the one invocation');

fn('ends only once the stream has been read to its end, and refuses a second request meanwhile', async () => {
  const f = createFunction({
    name: 'fn',
    handlers: {
      N: {
        async *Count() {
          yield 1;
          yield 2;
        },
      },
    },
  });
  await f.start();
  let done = false;
  void f.done.then(() => (done = true));
  const res = await f.invoke(request('N.Count'));
  const it = res.stream![Symbol.asyncIterator]();
  await it.next();
  await sleep(20);
  assert.not.ok(done, 'the function waits for the stream');
  const second = await f.invoke(request('N.Count'));
  assert.is(second.status, 503);
  assert.is(second.error?.id, 'micro-fn.not-started');
  await it.next();
  assert.ok((await it.next()).done);
  const outcome = await withTimeout(f.done);
  assert.equal(outcome.ok, true);
});

fn('ends when the reader cancels the stream (outcome 499)', async () => {
  const f = createFunction({
    name: 'fn',
    handlers: {
      N: {
        async *Count() {
          for (;;) yield 1;
        },
      },
    },
  });
  await f.start();
  const res = await f.invoke(request('N.Count'));
  await res.stream![Symbol.asyncIterator]().return!();
  const outcome = await withTimeout(f.done);
  assert.is(outcome.ok, false);
  assert.is((outcome as { error?: { code: number } }).error?.code, 499);
});

fn('a reply that resolves before taking the stream cancels it: the function still ends', async () => {
  let finallyRan = false;
  const f = createFunction({
    name: 'fn',
    handlers: {
      N: {
        async *Count() {
          try {
            for (;;) yield 1;
          } finally {
            finallyRan = true;
          }
        },
      },
    },
  });
  await f.start();
  await f.invoke(request('N.Count'), async () => {});
  await withTimeout(f.done);
  await eventually(() => finallyRan);
});

fn.run();
