/**
 * Streams over WebSocket on the Node listener (websocket.ts, websocket-frames.ts): Node's own WebSocket client in a
 * child process for what a standard client does, a hand-made raw socket for what it will not (bad frames, pings,
 * refused handshakes).
 */
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
  type MicroFunction,
  type ServiceDefinition,
} from '../../../../runtime/core/index.js';
import { createHttpListener, type HttpListener } from '../../../../runtime/plugins/http/listener.js';
import { createHttpTransport } from '../../../../runtime/plugins/http/index.js';
import { FrameReader, acceptKey, frame, closeFrame } from '../../../../runtime/plugins/http/websocket-frames.js';
import { WsClient, type WsEvent } from '../../../fixtures/ws-client/session.js';
import { RawWs } from '../../../fixtures/ws-client/raw.js';
import { eventually, sleep, withTimeout } from '../../../helpers.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const seen = {
  produced: 0,
  aborted: false,
  finallyRan: false,
  received: [] as unknown[],
  metadata: {} as Record<string, string | undefined>,
};

const definition: ServiceDefinition = {
  name: 'stream',
  handlers: {
    Countdown: {
      async *Count(req: { from: number }, ctx: Context) {
        ctx.responseMetadata.set('x-from', String(req.from));
        for (let n = req.from; n > 0; n--) yield { n };
        ctx.trailers.set('x-total', String(req.from));
      },
      async *Fail() {
        yield { n: 1 };
        yield { n: 2 };
        throw errors.conflict('stream', 'gave up after 2');
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
        let sum = 0;
        let count = 0;
        for await (const n of numbers) {
          sum += n;
          count++;
        }
        return { sum, count };
      },
    },
    Chat: {
      async *Echo(inbox: AsyncIterable<unknown>, ctx: Context) {
        seen.received = [];
        ctx.responseMetadata.set('x-chat', 'open');
        for await (const m of inbox) {
          seen.received.push(m);
          yield { echo: m };
        }
        ctx.trailers.set('x-count', String(seen.received.length));
      },
      async *Two(inbox: AsyncIterable<unknown>) {
        let n = 0;
        for await (const m of inbox) {
          yield { echo: m };
          if (++n === 2) return;
        }
      },
      async *Stall(inbox: AsyncIterable<unknown>, ctx: Context) {
        for await (const m of inbox) {
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
          yield m;
        }
      },
      async *Boom(): AsyncGenerator<unknown> {
        throw errors.conflict('stream', 'not now');
      },
      async *Meta(_inbox: AsyncIterable<unknown>, ctx: Context) {
        seen.metadata = { user: ctx.metadata.get('x-user'), header: ctx.metadata.get('x-header') };
        yield seen.metadata;
      },
    },
    Plain: {
      async Hello(req: { name: string }) {
        return { message: `Hello ${req.name}` };
      },
    },
  },
  streams: {
    'Numbers.Sum': 'client',
    'Chat.Echo': 'bidi',
    'Chat.Two': 'bidi',
    'Chat.Meta': 'bidi',
    'Chat.Stall': 'bidi',
    'Chat.Boom': 'bidi',
  },
};

function dispatcherFor(def: ServiceDefinition): Dispatcher {
  return new Dispatcher({
    service: def.name,
    router: new Router(def),
    codecs: [jsonCodec],
    logger: quiet,
    client: new Client(),
    broker: undefined,
    env: {},
  });
}

let listener: HttpListener;
let ws = '';
const clients: WsClient[] = [];
const raws: RawWs[] = [];

function client(path: string): WsClient {
  const c = new WsClient(`${ws}${path}`);
  clients.push(c);
  return c;
}

async function raw(path: string, headers?: Record<string, string>, method?: string): Promise<RawWs> {
  const r = await RawWs.open(listener.address, path, headers, method);
  raws.push(r);
  return r;
}

function cleanup(): void {
  for (const c of clients.splice(0)) c.stop();
  for (const r of raws.splice(0)) r.destroy();
}

const control = (e: WsEvent | undefined) => (e && 'control' in e ? e.control : undefined);
const texts = (events: WsEvent[]) => events.flatMap((e) => ('text' in e ? [JSON.parse(e.text) as unknown] : []));
const closeOf = (events: WsEvent[]) => events.find((e): e is Extract<WsEvent, { close: unknown }> => 'close' in e);

// ---
const wsStreams = suite('HttpListener: streams over WebSocket');
wsStreams.before(async () => {
  const dispatcher = dispatcherFor(definition);
  listener = await createHttpListener(async (request, reply) => reply(await dispatcher.handle(request)), {
    maxBodySize: 4096,
  });
  ws = listener.address.replace('http://', 'ws://');
});
wsStreams.after.each(cleanup);
wsStreams.after(() => listener.close());

wsStreams('echoes a bidi stream: metadata first, each message in order, trailers after, close 1000', async () => {
  const c = client('/stream/Chat.Echo');
  assert.equal(await c.next(), { open: true });
  const values = Array.from({ length: 100 }, (_, i) => ({ i }));
  c.messages(...values);
  c.send({ end: true });
  const events = await c.rest();
  const metadata = control(events[0])?.metadata as Record<string, string>;
  assert.is(metadata['x-chat'], 'open', 'metadata set before the first yield comes first');
  assert.equal(
    texts(events),
    values.map((v) => ({ echo: v })),
  );
  assert.equal(control(events.at(-2)), { end: true, trailers: { 'x-count': '100' } });
  assert.equal(closeOf(events)?.close, { code: 1000, reason: '', clean: true });
});

wsStreams('sums a client stream: one reply after the end', async () => {
  const c = client('/stream/Numbers.Sum');
  await c.next();
  c.messages(...Array.from({ length: 100 }, (_, i) => i + 1));
  c.send({ end: true });
  const events = await c.rest();
  assert.ok(control(events[0])?.metadata, 'metadata first');
  assert.equal(texts(events), [{ sum: 5050, count: 100 }]);
  assert.equal(control(events.at(-2)), { end: true, trailers: {} });
  assert.is(closeOf(events)?.close.code, 1000);
});

wsStreams('sums 20,000 messages written at once (a raw client): none lost or reordered', async () => {
  const r = await raw('/stream/Numbers.Sum');
  const frames = Array.from({ length: 20_000 }, (_, i) => r.frame(1, String(i + 1)));
  r.socket.write(Buffer.concat([...frames, r.frame(2, '{"end":true}')]));
  await r.until(() => r.closeCode() !== undefined, 'the close');
  assert.equal(r.texts(), ['{"sum":200010000,"count":20000}']);
});

wsStreams('serves a server stream whose request is the first text frame', async () => {
  const c = client('/stream/Countdown.Count');
  await c.next();
  c.messages({ from: 3 });
  c.send({ end: true });
  const events = await c.rest();
  assert.is((control(events[0])?.metadata as Record<string, string>)['x-from'], '3');
  assert.equal(texts(events), [{ n: 3 }, { n: 2 }, { n: 1 }]);
  assert.equal(control(events.at(-2)), { end: true, trailers: { 'x-total': '3' } });
});

wsStreams('routes GET / by the Micro-Service and Micro-Endpoint headers (a raw client)', async () => {
  const r = await raw('/', { 'Micro-Service': 'stream', 'Micro-Endpoint': 'Countdown.Count' });
  assert.is(r.status, 101);
  r.send(1, '{"from":2}');
  r.send(2, '{"end":true}');
  await r.until(() => r.closeCode() !== undefined, 'the close');
  assert.equal(r.texts(), ['{"n":2}', '{"n":1}']);
  assert.is(r.closeCode(), 1000);
});

wsStreams('ends with the error control frame after the items sent before it', async () => {
  const c = client('/stream/Countdown.Fail');
  await c.next();
  c.messages({});
  c.send({ end: true });
  const events = await c.rest();
  assert.equal(texts(events), [{ n: 1 }, { n: 2 }]);
  const end = control(events.at(-2)) as { error: { code: number; detail: string; id: string } };
  assert.is(end.error.code, 409);
  assert.is(end.error.detail, 'gave up after 2');
  assert.is(closeOf(events)?.close.code, 1000);
});

wsStreams('a client that closes mid-stream cancels it: the handler signal fires and its finally runs', async () => {
  const c = client('/stream/Countdown.Forever');
  await c.next();
  c.messages({});
  c.send({ end: true });
  for (let i = 0; i < 4; i++) await c.next('a message'); // metadata + 3 messages
  c.send({ close: 1000 });
  await eventually(() => seen.finallyRan && seen.aborted, 5000, 'the handler to be cancelled');
  assert.is(closeOf(await c.rest())?.close.code, 1000);
});

wsStreams('a dropped connection cancels the stream too (a raw client destroys its socket)', async () => {
  const r = await raw('/stream/Countdown.Forever');
  r.send(1, '{}');
  r.send(2, '{"end":true}');
  await r.until(() => r.texts().length >= 3, 'three messages');
  r.destroy();
  await eventually(() => seen.finallyRan && seen.aborted, 5000, 'the handler to be cancelled');
});

wsStreams('a handler that ends early ends the stream while the client still sends', async () => {
  const c = client('/stream/Chat.Two');
  await c.next();
  c.messages(1, 2, 3, 4, 5);
  const events = await c.rest();
  assert.equal(texts(events), [{ echo: 1 }, { echo: 2 }]);
  assert.equal(control(events.at(-2)), { end: true, trailers: {} });
  assert.is(closeOf(events)?.close.code, 1000);
});

wsStreams('a text frame that is no JSON ends the stream with a 400 and close 1007', async () => {
  const c = client('/stream/Chat.Echo');
  await c.next();
  c.messages('fine');
  c.send({ text: '{oops' });
  const events = await c.rest();
  const error = events.map(control).find((x) => x?.error) as { error: { code: number } } | undefined;
  assert.is(error?.error.code, 400);
  assert.is(closeOf(events)?.close.code, 1007);
});

wsStreams('a message over the body limit (4096 bytes) closes 1009 after the 3 messages before it', async () => {
  const c = client('/stream/Chat.Echo');
  await c.next();
  c.messages('a', 'b', 'c');
  for (let i = 0; i < 4; i++) await c.next('an echo'); // metadata + 3 echoes
  c.send({ repeat: 5000 });
  const events = await c.rest();
  const error = events.map(control).find((x) => x?.error) as { error: { code: number } } | undefined;
  assert.is(error?.error.code, 413);
  assert.is(closeOf(events)?.close.code, 1009);
  assert.is(seen.received.length, 3, 'the handler read the 3 messages before the long one, and nothing after');
});

wsStreams('an unmasked client frame closes 1002 with a 400', async () => {
  const r = await raw('/stream/Chat.Echo');
  r.send(1, '"hi"', { masked: false });
  await r.until(() => r.closeCode() !== undefined, 'the close');
  assert.is(r.closeCode(), 1002);
  assert.is((r.controls().find((c) => c.error)?.error as { code: number }).code, 400);
});

wsStreams('answers a ping with a pong and reassembles a fragmented message', async () => {
  const r = await raw('/stream/Chat.Echo');
  r.send(9, 'are you there');
  await r.until(() => r.frames.some((f) => f.opcode === 10), 'the pong');
  assert.is(r.frames.find((f) => f.opcode === 10)!.data.toString(), 'are you there');
  r.send(1, '{"part', { fin: false });
  r.send(9, 'between fragments');
  r.send(0, '":1}');
  r.send(2, '{"end":true}');
  await r.until(() => r.closeCode() !== undefined, 'the close');
  assert.equal(r.texts(), ['{"echo":{"part":1}}']);
  assert.is(r.closeCode(), 1000);
});

wsStreams('takes request metadata from the headers and from ?metadata=', async () => {
  const meta = encodeURIComponent(JSON.stringify({ 'X-User': 'ada' }));
  const r = await raw(`/stream/Chat.Meta?metadata=${meta}`, { 'X-Header': 'h' });
  r.send(2, '{"end":true}');
  await r.until(() => r.closeCode() !== undefined, 'the close');
  assert.equal(JSON.parse(r.texts()[0]!), { user: 'ada', header: 'h' });
});

wsStreams('refuses before the 101, as HTTP error JSON: unknown endpoint, plain endpoint, bad handshakes', async () => {
  const cases: [string, Record<string, string>, string | undefined, number][] = [
    ['/stream/Nope.Nope', {}, undefined, 404],
    ['/other/Chat.Echo', {}, undefined, 404],
    ['/stream/Plain.Hello', {}, undefined, 400],
    ['/stream/Chat.Echo', { 'Sec-WebSocket-Version': '8' }, undefined, 426],
    ['/stream/Chat.Echo', { 'Sec-WebSocket-Key': 'short' }, undefined, 400],
    ['/stream/Chat.Echo', {}, 'POST', 405],
    ['/stream/Chat.Echo', { Upgrade: 'h2c' }, undefined, 400],
    ['/stream/Chat.Echo?metadata=%5B1%5D', {}, undefined, 400],
  ];
  for (const [path, headers, method, status] of cases) {
    const r = await raw(path, headers, method);
    assert.is(r.status, status, `${method ?? 'GET'} ${path} ${JSON.stringify(headers)}`);
    await r.until(() => r.closed, 'the connection to close');
    assert.is((JSON.parse(r.body) as { code: number }).code, status);
  }
  const c = client('/stream/Plain.Hello');
  const events = await c.rest();
  assert.not.ok(
    events.some((e) => 'open' in e),
    'a standard client never opens',
  );
});

wsStreams('a handler that fails before it reads is answered as HTTP (409), no 101', async () => {
  const r = await raw('/stream/Chat.Boom');
  assert.is(r.status, 409);
  await r.until(() => r.closed, 'the connection to close');
  assert.is((JSON.parse(r.body) as { detail: string }).detail, 'not now');
});

wsStreams('stops pulling the handler while the client does not read (backpressure)', async () => {
  const r = await raw('/stream/Countdown.Forever');
  r.socket.pause();
  r.send(1, '{"size":1000}');
  r.send(2, '{"end":true}');
  let last = -1;
  await eventually(
    async () => {
      const now = seen.produced;
      const same = now === last && now > 0;
      last = now;
      if (!same) await sleep(200);
      return same;
    },
    10_000,
    'the handler to wait at its yield',
  );
  // A loopback socket holds a few MB at most: an unbounded writer would have made millions of 1 KB messages.
  assert.ok(last < 20_000, `${last} messages made while nothing was read`);
});

wsStreams('stops reading the socket while the handler reads nothing (of 64 MiB sent, under 24 MiB taken)', async () => {
  const r = await raw('/stream/Chat.Stall');
  const bytes = r.frame(1, `"${'y'.repeat(4000)}"`, { zeroMask: true });
  let taken = 0;
  // One frame at a time, each once the socket took the last: `taken` is what the server side's kernel and
  // WebSocket buffers accepted.
  void (async () => {
    for (let i = 0; i < 16 * 1024 && !r.closed; i++) {
      await new Promise((resolve) => r.socket.write(bytes, resolve));
      taken += bytes.length;
    }
  })();
  let last = -1;
  await eventually(
    async () => {
      const now = taken;
      const same = now === last && now > 0;
      last = now;
      if (!same) await sleep(500);
      return same;
    },
    20_000,
    'the client to stop writing',
  );
  // The server holds WS_REQUEST_BUFFER (1 MiB), the socket buffers on loopback a few MB more: the rest waits.
  assert.ok(last < 24 * 1024 * 1024, `${last} bytes of 64 MiB taken while the handler read nothing`);
});

wsStreams.run();

// ---
const limits = suite('HttpListener: WebSocket streams and the listener limits');
let limited: HttpListener;
limits.before(async () => {
  const dispatcher = dispatcherFor(definition);
  limited = await createHttpListener(async (request, reply) => reply(await dispatcher.handle(request)), {
    headersTimeout: 300,
    requestTimeout: 600,
    closeTimeout: 500,
  });
});
limits.after.each(cleanup);
limits.after(() => limited.close());

limits('a stream lasts past the request timeout (600 ms), and close() cuts it after closeTimeout', async () => {
  const r = await RawWs.open(limited.address, '/stream/Chat.Echo');
  raws.push(r);
  assert.is(r.status, 101);
  r.send(1, '1');
  await sleep(1500);
  r.send(1, '2');
  await r.until(() => r.texts().length === 2, 'two echoes');
  assert.not.ok(r.closed, 'the stream is still open after 1.5 s');
  await withTimeout(limited.close(), 5000, 'close()');
  await r.until(() => r.closed, 'the connection to be cut');
});

limits('a client that leaves before the 101 is gone for the host that queued it (Caller.onGone)', async () => {
  let gone = false;
  const queued = await createHttpListener(async (request, reply) => {
    // A host that queues the request (serve's pool) drops it once its caller has gone.
    await new Promise<void>((resolve) => request.caller!.onGone(resolve));
    gone = request.caller!.gone;
    await reply({
      status: 200,
      contentType: 'application/json',
      body: new Uint8Array(),
      metadata: new Metadata(),
    }).catch(() => {});
  });
  try {
    const r = await RawWs.open(queued.address, '/stream/Chat.Echo', {}, 'GET', false);
    raws.push(r);
    await sleep(100);
    assert.is(r.status, 0, 'no answer while queued');
    r.destroy();
    await eventually(() => gone, 5000, 'the caller to be gone');
  } finally {
    await queued.close();
  }
});

limits.run();

// ---
const reader = suite('FrameReader');

const masked = (opcode: number, payload: string, fin = true): Buffer => {
  const data = Buffer.from(payload);
  const head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | data.length, 1, 2, 3, 4]);
  const body = Buffer.from(data.map((b, i) => b ^ [1, 2, 3, 4][i & 3]!));
  return Buffer.concat([head, body]);
};

reader('reads frames split at every byte', () => {
  const bytes = Buffer.concat([masked(1, '"a"'), masked(9, 'p'), masked(1, '{"b"', false), masked(0, ':2}')]);
  const r = new FrameReader(100);
  const events = [];
  for (let i = 0; i < bytes.length; i++) events.push(...r.push(bytes.subarray(i, i + 1)));
  assert.equal(
    events.map((e) => ('data' in e ? [e.kind, e.data.toString()] : [e.kind])),
    [
      ['text', '"a"'],
      ['ping', 'p'],
      ['text', '{"b":2}'],
    ],
  );
});

reader('throws 1009 for a fragmented message over the limit, 1002 for reserved bits', () => {
  const r = new FrameReader(5);
  r.push(masked(1, 'abc', false));
  assert.throws(
    () => r.push(masked(0, 'def')),
    (e: { code: number }) => e.code === 1009,
  );
  const bad = masked(1, 'x');
  bad[0]! |= 0x40;
  assert.throws(
    () => new FrameReader(5).push(bad),
    (e: { code: number }) => e.code === 1002,
  );
});

reader.run();

// ---
const framing = suite('acceptKey, frame, closeFrame');

framing("computes RFC 6455's sample accept key", async () => {
  assert.is(await acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
});

framing('writes 7-bit, 16-bit and 64-bit lengths, and a close code', () => {
  assert.equal([...frame(1, new Uint8Array(3)).subarray(0, 2)], [0x81, 3]);
  assert.equal([...frame(2, new Uint8Array(300)).subarray(0, 4)], [0x82, 126, 1, 44]);
  assert.equal([...frame(1, new Uint8Array(70_000)).subarray(0, 10)], [0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
  assert.equal([...closeFrame(1009)], [0x88, 2, 0x03, 0xf1]);
});

framing('cuts a long close reason to 123 bytes on a character boundary', () => {
  const close = closeFrame(1011, 'é'.repeat(200));
  assert.is(close[1], 2 + 122);
  assert.is(new TextDecoder('utf-8', { fatal: true }).decode(close.subarray(4)), 'é'.repeat(61));
});

framing.run();

// ---
const oneShot = suite('MicroFunction over WebSocket: the stream is the one invocation');
let fn: MicroFunction;
oneShot.before(async () => {
  fn = createFunction(definition, { transport: createHttpTransport(), logger: quiet });
  await fn.start();
});
oneShot.after.each(cleanup);
oneShot.after(async () => void (await fn.stop()));

oneShot('refuses a second WebSocket with the retryable 503 before any 101, and ends after the first', async () => {
  const address = fn.service.address!;
  const c = new WsClient(`${address.replace('http://', 'ws://')}/stream/Chat.Echo`);
  clients.push(c);
  await c.next();
  c.messages('one');
  await c.next('metadata');
  await c.next('the echo');
  const second = await RawWs.open(address, '/stream/Chat.Echo');
  raws.push(second);
  assert.is(second.status, 503);
  assert.is((JSON.parse(second.body) as { id: string }).id, 'micro-fn.not-started');
  let done = false;
  void fn.done.then(() => (done = true));
  await sleep(50);
  assert.not.ok(done, 'the function waits for its stream');
  c.send({ end: true });
  const events = await c.rest();
  assert.equal(control(events.at(-2)), { end: true, trailers: { 'x-count': '1' } });
  const outcome = await withTimeout(fn.done, 5000, 'the function to end');
  assert.is(outcome.ok, true);
});

oneShot.run();
