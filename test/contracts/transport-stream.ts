/**
 * The stream part of the Transport contract (issue 16): a transport that carries streams runs this suite with its own
 * factory, beside transportContract. Server, client and bidi streams through a real Dispatcher; metadata before,
 * trailers after; an error before and in the middle; cancellation by the reader; the reply resolving only once the
 * whole stream was handed over (what keeps a one-shot function alive until its stream has ended).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Client,
  Dispatcher,
  Metadata,
  Router,
  errors,
  jsonCodec,
  type Context,
  type Listener,
  type MessageStream,
  type NodeRecord,
  type RequestHandler,
  type StreamEnd,
  type TransportRequest,
} from '../../runtime/core/index.js';
import { eventually, withTimeout } from '../helpers.js';
import { transportRequest, type TransportFixture } from './transport.js';

interface Ctx {
  fixture?: TransportFixture;
  listeners: Listener[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** Encoded messages of `values`, pulled one by one. */
function messages(values: unknown[]): MessageStream {
  let i = 0;
  let done!: (end: StreamEnd) => void;
  const end = new Promise<StreamEnd>((r) => (done = r));
  return {
    end,
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        if (i < values.length) return { done: false, value: enc.encode(JSON.stringify(values[i++])) };
        done({ trailers: new Metadata() });
        return { done: true, value: undefined };
      },
      return: async () => {
        done({ trailers: new Metadata() });
        return { done: true, value: undefined };
      },
    }),
  };
}

async function collect(stream: MessageStream | undefined): Promise<unknown[]> {
  assert.ok(stream, 'the reply is a stream');
  const out: unknown[] = [];
  for await (const m of stream) out.push(JSON.parse(dec.decode(m)));
  return out;
}

export function transportStreamContract(name: string, create: () => Promise<TransportFixture>): void {
  const test = suite<Ctx>(`${name} transport contract: streams`, { listeners: [] });
  const seen = { cancelled: false, received: [] as number[] };
  const dispatcher = new Dispatcher({
    service: 'greeter',
    router: new Router({
      name: 'greeter',
      handlers: {
        S: {
          async *Count(req: { from: number }, ctx: Context) {
            ctx.responseMetadata.set('x-from', String(req.from));
            for (let n = req.from; n > 0; n--) yield { n };
            ctx.trailers.set('x-total', String(req.from));
          },
          async *Fail() {
            yield 1;
            yield 2;
            throw errors.conflict('greeter', 'gave up after 2');
          },
          async *Refuse(): AsyncGenerator<number> {
            throw errors.conflict('greeter', 'not now');
          },
          async *Forever() {
            seen.cancelled = false;
            try {
              for (let n = 0; ; n++) yield n;
            } finally {
              seen.cancelled = true;
            }
          },
          async Sum(numbers: AsyncIterable<number>) {
            seen.received = [];
            for await (const n of numbers) seen.received.push(n);
            return { count: seen.received.length };
          },
          async *Echo(inbox: AsyncIterable<unknown>) {
            for await (const m of inbox) yield { echo: m };
          },
        },
      },
      streams: { 'S.Sum': 'client', 'S.Echo': 'bidi' },
    }),
    codecs: [jsonCodec],
    logger: quiet,
    client: new Client(),
    broker: undefined,
    env: {},
  });
  const dispatch: RequestHandler = async (request, reply) => reply(await dispatcher.handle(request));
  const transportOf = (ctx: Ctx) => ctx.fixture!.transport;
  async function listen(ctx: Ctx, handler: RequestHandler = dispatch): Promise<NodeRecord> {
    const listener = await withTimeout(transportOf(ctx).listen!(handler, { address: '127.0.0.1:0' }), 5000, 'listen');
    ctx.listeners.push(listener);
    return { id: `node-${ctx.listeners.length}`, address: listener.address, metadata: {} };
  }
  const call = (ctx: Ctx, node: NodeRecord, request: TransportRequest) =>
    withTimeout(transportOf(ctx).call(node, request), 5000, 'call');
  const streamed = (endpoint: string, values: unknown[]): TransportRequest => ({
    ...transportRequest(endpoint, new Uint8Array(0)),
    stream: messages(values),
  });

  test.before.each(async (ctx) => {
    ctx.listeners = [];
    ctx.fixture = await withTimeout(create(), 10_000, 'creating the transport');
  });
  test.after.each(async (ctx) => {
    const fixture = ctx.fixture;
    ctx.fixture = undefined;
    await withTimeout(Promise.all(ctx.listeners.map((l) => l.close())), 5000, 'closing the listeners');
    await withTimeout(fixture?.cleanup() ?? Promise.resolve(), 5000, 'cleanup');
  });

  test('carries a server stream in order, with metadata before and trailers after (3 messages)', async (ctx) => {
    const node = await listen(ctx);
    const res = await call(ctx, node, transportRequest('S.Count', '{"from":3}'));
    assert.is(res.metadata.get('x-from'), '3');
    assert.equal(await withTimeout(collect(res.stream)), [{ n: 3 }, { n: 2 }, { n: 1 }]);
    const end = await withTimeout(res.stream!.end);
    assert.is(end.error, undefined);
    assert.is(end.trailers.get('x-total'), '3');
  });

  test('ends a stream that fails after 2 messages with its error: the reader throws it, end carries it', async (ctx) => {
    const node = await listen(ctx);
    const res = await call(ctx, node, transportRequest('S.Fail'));
    const got: unknown[] = [];
    let thrown: { code?: number; detail?: string } | undefined;
    try {
      for await (const m of res.stream!) got.push(JSON.parse(dec.decode(m)));
    } catch (err) {
      thrown = err as typeof thrown;
    }
    assert.equal(got, [1, 2]);
    assert.equal([thrown?.code, thrown?.detail], [409, 'gave up after 2']);
    assert.is((await res.stream!.end).error?.code, 409);
  });

  test('answers an error before the first message as a plain error reply', async (ctx) => {
    const node = await listen(ctx);
    const res = await call(ctx, node, transportRequest('S.Refuse'));
    assert.is(res.stream, undefined);
    assert.is(res.error?.code, 409);
  });

  test('carries a client stream of 1,000 messages in order', async (ctx) => {
    const node = await listen(ctx);
    const values = Array.from({ length: 1000 }, (_, i) => i);
    const res = await call(ctx, node, streamed('S.Sum', values));
    assert.equal(JSON.parse(dec.decode(res.body)), { count: 1000 });
    assert.equal(seen.received, values);
  });

  test('carries a bidi echo (5 messages)', async (ctx) => {
    const node = await listen(ctx);
    const res = await call(ctx, node, streamed('S.Echo', [1, 2, 3, 4, 5]));
    assert.equal(
      await withTimeout(collect(res.stream)),
      [1, 2, 3, 4, 5].map((n) => ({ echo: n })),
    );
  });

  test('a reader that stops after 3 messages cancels the handler (its finally runs)', async (ctx) => {
    const node = await listen(ctx);
    const res = await call(ctx, node, transportRequest('S.Forever'));
    let read = 0;
    for await (const _ of res.stream!) if (++read === 3) break;
    await eventually(() => seen.cancelled);
  });

  test('resolves the reply only once the whole stream was handed over (3 messages)', async (ctx) => {
    let pulled = 0;
    let resolvedAt = -1;
    const node = await listen(ctx, async (_request, reply) => {
      const stream = messages([1, 2, 3]);
      const it = stream[Symbol.asyncIterator]();
      const counted: MessageStream = {
        end: stream.end,
        [Symbol.asyncIterator]: () => ({
          next: async () => {
            const r = await it.next();
            if (!r.done) pulled++;
            return r;
          },
          return: () => it.return!(),
        }),
      };
      await reply({
        status: 200,
        contentType: 'application/json',
        body: new Uint8Array(0),
        metadata: new Metadata(),
        stream: counted,
      });
      resolvedAt = pulled;
    });
    const res = await call(ctx, node, transportRequest('S.Any'));
    assert.equal(await withTimeout(collect(res.stream)), [1, 2, 3]);
    await eventually(() => resolvedAt !== -1);
    assert.is(resolvedAt, 3, 'the reply resolved after all 3 messages were pulled');
  });

  test.run();
}
