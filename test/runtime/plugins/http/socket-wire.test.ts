/**
 * The WebSocket stream wire (socket-wire.ts) on a socket held in memory: what a fetch host's server socket receives
 * and sends, checked frame by frame, and its bounds. workerd and Deno run it for real in the target contract suite.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Metadata,
  MicroError,
  Runner,
  type MessageStream,
  type ServiceDefinition,
  type StreamEnd,
} from '../../../../runtime/core/index.js';
import { createFetchHandler } from '../../../../runtime/plugins/http/fetch.js';
import { SOCKET_QUEUE_BYTES, SocketExchange, type ServerSocket } from '../../../../runtime/plugins/http/socket-wire.js';
import { eventually, withTimeout } from '../../../helpers.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A server socket in memory: `sent` holds what the server sent (text as is, binary parsed), `receive` feeds it. */
class MemorySocket implements ServerSocket {
  readyState = 1;
  binaryType = 'blob';
  bufferedAmount = 0;
  readonly sent: ({ text: string } | { control: unknown })[] = [];
  closedWith: number | undefined;
  readonly #listeners = new Map<string, ((event: unknown) => void)[]>();

  send(data: string | Uint8Array): void {
    if (this.readyState !== 1) throw new Error('send on a closed socket');
    this.sent.push(typeof data === 'string' ? { text: data } : { control: JSON.parse(decoder.decode(data)) });
  }
  close(code?: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  addEventListener(type: string, listener: (event: unknown) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }
  emit(type: string, event: unknown = {}): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
  text(value: string): void {
    this.emit('message', { data: value });
  }
  binary(value: string): void {
    this.emit('message', { data: encoder.encode(value).buffer });
  }
}

/** A reply stream of `values`, whose `end` says `error` once they were read. */
function replyOf(values: unknown[], error?: MicroError): MessageStream & { returned: boolean } {
  let i = 0;
  let resolveEnd!: (end: StreamEnd) => void;
  const end = new Promise<StreamEnd>((resolve) => (resolveEnd = resolve));
  const trailers = new Metadata().set('x-done', 'yes');
  const stream = {
    end,
    returned: false,
    [Symbol.asyncIterator]: () => ({
      async next(): Promise<IteratorResult<Uint8Array>> {
        if (i < values.length) return { done: false, value: encoder.encode(JSON.stringify(values[i++])) };
        resolveEnd(error ? { trailers, error } : { trailers });
        if (error) throw error;
        return { done: true, value: undefined };
      },
      async return(): Promise<IteratorResult<Uint8Array>> {
        stream.returned = true;
        resolveEnd({ trailers });
        return { done: true, value: undefined };
      },
    }),
  };
  return stream;
}

const reply = (stream?: MessageStream, error?: MicroError) => ({
  status: error?.code ?? 200,
  contentType: 'application/json',
  body: stream ? new Uint8Array(0) : encoder.encode('{"sum":3}'),
  metadata: new Metadata().set('x-first', 'a'),
  ...(stream ? { stream } : {}),
  ...(error ? { error } : {}),
});

/** Lets the exchange's queued work (an end after a failure) run. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

// ---
const exchange = suite('SocketExchange');

exchange(
  'writes a stream as metadata, one text frame per message, end with the trailers, then close 1000',
  async () => {
    const socket = new MemorySocket();
    const ex = new SocketExchange(socket, 'svc', 1024);
    assert.is(socket.binaryType, 'arraybuffer');
    await withTimeout(ex.reply(reply(replyOf([1, { b: 2 }]))));
    assert.equal(socket.sent, [
      { control: { metadata: { 'x-first': 'a' } } },
      { text: '1' },
      { text: '{"b":2}' },
      { control: { end: true, trailers: { 'x-done': 'yes' } } },
    ]);
    assert.is(socket.closedWith, 1000);
  },
);

exchange(
  'an error after 1 message is the error control with the trailers; a plain reply is one text frame',
  async () => {
    const socket = new MemorySocket();
    const failed = new MicroError('svc', 409, 'gave up');
    await withTimeout(new SocketExchange(socket, 'svc', 1024).reply(reply(replyOf([1], failed))));
    assert.equal(socket.sent.at(-1), { control: { error: failed.toJSON(), trailers: { 'x-done': 'yes' } } });
    const plain = new MemorySocket();
    await withTimeout(new SocketExchange(plain, 'svc', 1024).reply(reply()));
    assert.equal(plain.sent, [
      { control: { metadata: { 'x-first': 'a' } } },
      { text: '{"sum":3}' },
      { control: { end: true, trailers: {} } },
    ]);
  },
);

exchange('hands text frames to the request stream until {"end":true}', async () => {
  const socket = new MemorySocket();
  const ex = new SocketExchange(socket, 'svc', 1024);
  socket.text('1');
  socket.text('"two"');
  socket.binary('{"end":true}');
  const got: string[] = [];
  for await (const message of ex.messages) got.push(decoder.decode(message));
  assert.equal(got, ['1', '"two"']);
  assert.equal(await ex.messages.end, { trailers: new Metadata() });
});

exchange(
  'a close before the end fails the request stream with a 499 and tells the caller gone (1 listener)',
  async () => {
    const socket = new MemorySocket();
    const ex = new SocketExchange(socket, 'svc', 1024);
    let gone = 0;
    ex.onGone(() => gone++);
    socket.text('1');
    socket.emit('close', { code: 1001 });
    assert.is(gone, 1);
    assert.ok(ex.gone);
    assert.is(decoder.decode((await ex.messages.next()).value as Uint8Array), '1', 'what had arrived is read first');
    try {
      await ex.messages.next();
      assert.unreachable('the next read throws');
    } catch (err) {
      assert.is((err as MicroError).code, 499);
    }
  },
);

exchange('a reply whose caller went is cancelled: its stream returned, nothing sent', async () => {
  const socket = new MemorySocket();
  const ex = new SocketExchange(socket, 'svc', 1024);
  socket.emit('close', { code: 1001 });
  socket.readyState = 3;
  const stream = replyOf([1, 2, 3]);
  await withTimeout(ex.reply(reply(stream)));
  assert.ok(stream.returned);
  assert.equal(socket.sent, []);
});

exchange(
  `more than SOCKET_QUEUE_BYTES (${SOCKET_QUEUE_BYTES}) unread ends the stream with a 413 control and a close`,
  async () => {
    const socket = new MemorySocket();
    const ex = new SocketExchange(socket, 'svc', 65_536);
    const message = `"${'x'.repeat(65_534)}"`;
    const fits = SOCKET_QUEUE_BYTES / message.length;
    for (let i = 0; i <= fits; i++) socket.text(message);
    await tick();
    const last = socket.sent.at(-1) as { control: { error: { code: number } } };
    assert.is(last.control.error.code, 413, `${fits} messages of 64 KiB fit, the next is refused`);
    assert.is(socket.closedWith, 1000);
    let read = 0;
    try {
      for await (const _ of ex.messages) read++;
    } catch (err) {
      assert.is((err as MicroError).code, 413);
    }
    assert.is(read, fits, 'the messages before the bound are still read');
  },
);

exchange('a message over the limit is a 413, a binary frame other than {"end":true} a 400', async () => {
  const long = new MemorySocket();
  const ex = new SocketExchange(long, 'svc', 4);
  long.text('"12345"');
  await tick();
  await ex.messages.next().catch((err: MicroError) => assert.is(err.code, 413, 'the handler reads the 413'));
  assert.is((long.sent.at(-1) as { control: { error: { code: number } } }).control.error.code, 413);
  const bad = new MemorySocket();
  new SocketExchange(bad, 'svc', 1024);
  bad.binary('{"hello":1}');
  await tick();
  assert.is((bad.sent.at(-1) as { control: { error: { code: number } } }).control.error.code, 400);
  assert.is(bad.closedWith, 1000);
});

exchange('waits to send while the host holds more than 1 MiB unsent', async () => {
  const socket = new MemorySocket();
  socket.bufferedAmount = 2 * 1_048_576;
  const ex = new SocketExchange(socket, 'svc', 1024);
  const writing = ex.reply(reply(replyOf([1, 2])));
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(socket.sent.length, 1, 'only the metadata while the host is full');
  socket.bufferedAmount = 0;
  await withTimeout(writing);
  assert.is(socket.sent.length, 4);
});

exchange.run();

// ---
const handler = suite('createFetchHandler: WebSocket');

interface Counts {
  stopped: number;
  upgrades: number;
}

function echo(counts: Counts): ServiceDefinition {
  return {
    name: 'chat',
    streams: { 'Chat.Echo': 'bidi' },
    handlers: {
      Chat: {
        async *Echo(input: AsyncIterable<unknown>) {
          for await (const m of input) yield { echo: m };
        },
        Plain: () => ({}),
      },
    },
    afterStop: () => void counts.stopped++,
  };
}

const none = async () => ({ transports: [], close: async () => {} });

/** A WebSocket request to the handler of `counts`' function, on `socket` (Node cannot make a 101: a 200 stands in). */
function open(counts: Counts, socket: MemorySocket, path: string) {
  const handle = createFetchHandler(new Runner(echo(counts), { env: {}, plugins: none }));
  const upgrade = () => (counts.upgrades++, { socket, response: new Response(null, { status: 200 }) });
  const runs: Promise<unknown>[] = [];
  const request = new Request(`http://fn.test${path}`, { headers: { upgrade: 'websocket' } });
  const response = handle(request, { upgrade, waitUntil: (p) => void runs.push(p) });
  return { response, runs };
}

handler('serves a bidi stream on the socket: one invocation, which stops only after its end was sent', async () => {
  const counts = { stopped: 0, upgrades: 0 };
  const socket = new MemorySocket();
  const { response, runs } = open(counts, socket, '/chat/Chat.Echo');
  assert.is((await response).status, 200);
  socket.text('"a"');
  await eventually(async () => socket.sent.length >= 2, 5000, 'the echo');
  assert.ok('control' in socket.sent[0]! && 'metadata' in (socket.sent[0].control as object), 'metadata first');
  assert.equal(socket.sent[1], { text: '{"echo":"a"}' });
  assert.is(counts.stopped, 0, 'the function runs while the stream is open');
  socket.binary('{"end":true}');
  await withTimeout(Promise.all(runs));
  assert.equal(socket.sent.at(-1), { control: { end: true, trailers: {} } });
  assert.is(socket.closedWith, 1000);
  assert.is(counts.stopped, 1, 'one function, stopped once the stream closed on both sides');
});

handler('refuses an unknown endpoint (404) and a plain one (400) before the upgrade, running nothing', async () => {
  const counts = { stopped: 0, upgrades: 0 };
  const unknown = await open(counts, new MemorySocket(), '/chat/Chat.Nope').response;
  assert.is(unknown.status, 404);
  const plain = await open(counts, new MemorySocket(), '/chat/Chat.Plain').response;
  assert.is(plain.status, 400);
  assert.match(((await plain.json()) as { detail: string }).detail, 'does not stream');
  assert.equal(counts, { stopped: 0, upgrades: 0 });
});

handler.run();
