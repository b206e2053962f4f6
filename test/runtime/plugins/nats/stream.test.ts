/** Streams over NATS (runtime/plugins/nats/stream.ts): a real nats-server, real services behind the NATS transport. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers, type NatsConnection } from 'nats';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Metadata,
  createClient,
  createFunction,
  createService,
  errors,
  isMicroError,
  type Context,
  type MessageStream,
  type NodeRecord,
  type Service,
  type ServiceDefinition,
  type StreamEnd,
  type TransportRequest,
} from '../../../../runtime/index.js';
import { createMemoryRegistry } from '../../../../runtime/plugins/memory/registry.js';
import {
  STREAM_BATCH_BYTES,
  STREAM_WINDOW,
  STREAM_WINDOW_BYTES,
  packBatch,
  unpackBatch,
} from '../../../../runtime/plugins/nats/stream.js';
import { NatsTransport, createNatsTransport } from '../../../../runtime/plugins/nats/transport.js';
import { eventually, rejects, sleep, withTimeout } from '../../../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function request(endpoint: string, body: unknown = {}, stream?: MessageStream): TransportRequest {
  return {
    id: crypto.randomUUID(),
    service: 'streams',
    endpoint,
    contentType: 'application/json',
    body: stream ? new Uint8Array(0) : enc.encode(JSON.stringify(body)),
    metadata: new Metadata(),
    ...(stream ? { stream } : {}),
  };
}

/** A request stream of `values`, pulled one by one; `pulled` counts what was read, `cancelled` its return(). */
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

async function collect(stream: MessageStream | undefined): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const m of stream!) out.push(JSON.parse(dec.decode(m)));
  return out;
}

async function all<T>(values: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of values) out.push(v);
  return out;
}

const range = (n: number, from = 1): number[] => Array.from({ length: n }, (_, i) => i + from);

if (natsAvailable()) {
  interface Context_ {
    server: NatsServer;
    transport: NatsTransport;
    services: Service[];
    /** What the handlers saw, per test. */
    seen: { produced: number; aborted: boolean; finallyRan: boolean };
    start(definition: ServiceDefinition, transport?: NatsTransport): Promise<NodeRecord>;
  }

  // ---
  const streams = suite<Context_>('NatsTransport: streams', {} as Context_);
  streams.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
  });
  streams.after(async (ctx) => {
    await withTimeout(ctx.server?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
  });
  streams.before.each((ctx) => {
    ctx.transport = createNatsTransport({ address: ctx.server.url });
    ctx.services = [];
    ctx.seen = { produced: 0, aborted: false, finallyRan: false };
    ctx.start = async (definition, transport = ctx.transport) => {
      const service = createService(definition, { registry: createMemoryRegistry(), transport, logger: quiet });
      ctx.services.push(service);
      await withTimeout(service.start(), 5000, 'service start');
      return { id: service.id, address: service.address!, metadata: {} };
    };
  });
  streams.after.each(async (ctx) => {
    await withTimeout(Promise.allSettled(ctx.services.map((s) => s.stop())), 10_000, 'stopping the services');
    await withTimeout(ctx.transport.close(), 5000, 'closing the transport');
  });

  /** A service with the streaming endpoints the tests use; `seen` records what its handlers lived through. */
  const definition = (ctx: Context_): ServiceDefinition => ({
    name: 'streams',
    handlers: {
      S: {
        async *Count(req: { n: number }) {
          for (let i = 1; i <= req.n; i++) {
            ctx.seen.produced = i;
            yield { i };
          }
        },
        async *Forever(_req: unknown, c: Context) {
          c.signal.addEventListener('abort', () => (ctx.seen.aborted = true));
          try {
            for (let i = 1; ; i++) {
              ctx.seen.produced = i;
              yield { i };
            }
          } finally {
            ctx.seen.finallyRan = true;
          }
        },
        async *Big(req: { size: number }) {
          for (let i = 1; ; i++) {
            ctx.seen.produced = i;
            yield 'x'.repeat(req.size);
          }
        },
        async *Fail(req: { after: number }) {
          for (let i = 1; i <= req.after; i++) yield { i };
          throw errors.badRequest('streams', `failed after ${req.after}`);
        },
        async *Meta(_req: unknown, c: Context) {
          c.responseMetadata.set('x-before', 'b1');
          yield 1;
          yield 2;
          c.trailers.set('x-total', '2');
        },
        async Sum(numbers: AsyncIterable<number>) {
          let sum = 0;
          for await (const n of numbers) sum += n;
          return sum;
        },
        async *Echo(values: AsyncIterable<unknown>) {
          for await (const v of values) yield v;
        },
        async First(values: AsyncIterable<unknown>) {
          for await (const v of values) return v;
          return null;
        },
      },
    },
    streams: { 'S.Sum': 'client', 'S.Echo': 'bidi', 'S.First': 'client' },
  });

  streams('carries a server stream of 10,000 messages in order, none lost', async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const response = await withTimeout(ctx.transport.call(node, request('S.Count', { n: 10_000 })));
    assert.ok(response.stream, 'a streamed reply');
    const got = (await withTimeout(collect(response.stream), 30_000, 'reading 10,000 messages')) as { i: number }[];
    assert.is(got.length, 10_000, 'all 10,000 messages');
    assert.ok(
      got.every((m, k) => m.i === k + 1),
      'in order',
    );
    assert.is((await response.stream!.end).error, undefined);
  });

  streams('carries a client stream of 1,000 numbers: the handler sums them (500,500)', async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const input = messages(range(1000));
    const response = await withTimeout(ctx.transport.call(node, request('S.Sum', {}, input)), 20_000, 'the sum');
    assert.is(response.error, undefined);
    assert.is(JSON.parse(dec.decode(response.body)), 500_500);
    assert.is(input.pulled, 1000, 'every message read once');
  });

  streams('carries a bidi stream: an echo of 500 messages in order', async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const response = await withTimeout(ctx.transport.call(node, request('S.Echo', {}, messages(range(500)))));
    assert.ok(response.stream);
    assert.equal(await withTimeout(collect(response.stream), 20_000, 'the echo'), range(500));
  });

  streams(`keeps a slow reader's handler at most the window (${STREAM_WINDOW}) ahead`, async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const response = await withTimeout(ctx.transport.call(node, request('S.Count', { n: 10_000 })));
    const it = response.stream![Symbol.asyncIterator]();
    await withTimeout(it.next());
    await eventually(() => ctx.seen.produced >= STREAM_WINDOW, 5000, 'the handler filling the window');
    await sleep(300); // time for the handler to run past the window, if anything let it
    assert.ok(
      ctx.seen.produced <= 1 + STREAM_WINDOW,
      `produced ${ctx.seen.produced} with 1 read: at most ${1 + STREAM_WINDOW}`,
    );
    for (let k = 0; k < 10; k++) await withTimeout(it.next());
    await sleep(300);
    assert.ok(
      ctx.seen.produced <= 11 + STREAM_WINDOW,
      `produced ${ctx.seen.produced} with 11 read: at most ${11 + STREAM_WINDOW}`,
    );
    await it.return!();
  });

  streams(
    `keeps a slow reader's handler at most ${STREAM_WINDOW_BYTES} bytes (plus one message) ahead`,
    async (ctx) => {
      const node = await ctx.start(definition(ctx));
      const size = 10_000; // 10,002 bytes a message as JSON: the byte window binds before the message count
      const bound = Math.ceil(STREAM_WINDOW_BYTES / (size + 2));
      assert.ok(bound < STREAM_WINDOW, 'the test measures the byte bound');
      const response = await withTimeout(ctx.transport.call(node, request('S.Big', { size })));
      const it = response.stream![Symbol.asyncIterator]();
      await withTimeout(it.next());
      await eventually(() => ctx.seen.produced >= bound, 5000, 'the handler filling the byte window');
      await sleep(300); // time for the handler to run past the window, if anything let it
      assert.ok(ctx.seen.produced <= 1 + bound, `produced ${ctx.seen.produced} with 1 read: at most ${1 + bound}`);
      await it.return!();
    },
  );

  streams("a reader that stops after 3: the handler's signal fires and its generator's finally runs", async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const response = await withTimeout(ctx.transport.call(node, request('S.Forever')));
    const got: unknown[] = [];
    for await (const m of response.stream!) {
      got.push(JSON.parse(dec.decode(m)));
      if (got.length === 3) break;
    }
    assert.equal(got, [{ i: 1 }, { i: 2 }, { i: 3 }]);
    await eventually(() => ctx.seen.aborted && ctx.seen.finallyRan, 5000, "the handler's signal");
  });

  streams("a caller whose connection closes mid-stream: the handler's signal fires", async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const caller = createNatsTransport({ address: ctx.server.url });
    const response = await withTimeout(caller.call(node, request('S.Forever')));
    const it = response.stream![Symbol.asyncIterator]();
    await withTimeout(it.next());
    await withTimeout(caller.close(), 5000, 'closing the caller');
    await eventually(() => ctx.seen.aborted && ctx.seen.finallyRan, 10_000, "the handler's signal");
  });

  streams("a stream past its deadline (300 ms) ends with a 408 and the handler's signal fires", async (ctx) => {
    const registry = createMemoryRegistry();
    const service = createService(definition(ctx), { registry, transport: ctx.transport, logger: quiet });
    ctx.services.push(service);
    await withTimeout(service.start(), 5000, 'service start');
    const client = createClient({ registry, transports: [ctx.transport] });
    const err = await rejects(() =>
      withTimeout(
        (async () => {
          for await (const _ of client.stream('streams', 'S.Forever', {}, { timeout: 300 })) await sleep(10);
        })(),
        10_000,
        'the stream',
      ),
    );
    assert.ok(isMicroError(err), String(err));
    assert.is(err.code, 408);
    await eventually(() => ctx.seen.aborted && ctx.seen.finallyRan, 5000, "the handler's signal");
  });

  streams('an error mid-stream arrives as error JSON after the 5 messages before it', async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const response = await withTimeout(ctx.transport.call(node, request('S.Fail', { after: 5 })));
    const got: unknown[] = [];
    const err = await rejects(async () => {
      for await (const m of response.stream!) got.push(JSON.parse(dec.decode(m)));
    });
    assert.equal(got, [{ i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }, { i: 5 }]);
    assert.ok(isMicroError(err));
    assert.equal([err.id, err.code, err.detail], ['streams', 400, 'failed after 5']);
    assert.is((await response.stream!.end).error?.detail, 'failed after 5');
  });

  streams('metadata set before the first message comes with the reply, trailers after the last', async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const response = await withTimeout(ctx.transport.call(node, request('S.Meta')));
    assert.is(response.metadata.get('x-before'), 'b1');
    assert.is(response.metadata.get('micro-stream'), undefined, 'framing is no metadata');
    assert.equal(await collect(response.stream), [1, 2]);
    const end = await response.stream!.end;
    assert.is(end.trailers.get('x-total'), '2');
    assert.is(end.trailers.get('micro-seq'), undefined, 'framing is no trailer');
  });

  streams('a client stream the handler stops reading after 1 of 1,000: the caller stops sending', async (ctx) => {
    const node = await ctx.start(definition(ctx));
    const input = messages(range(1000));
    const response = await withTimeout(ctx.transport.call(node, request('S.First', {}, input)));
    assert.is(JSON.parse(dec.decode(response.body)), 1);
    await eventually(() => input.cancelled, 5000, 'the request stream cancelled');
    assert.ok(input.pulled <= 1 + STREAM_WINDOW, `pulled ${input.pulled}: at most the window past the one read`);
  });

  streams('a client stream to nobody fails as unreachable (503) without reading a message', async (ctx) => {
    const node = await ctx.start(definition(ctx));
    await ctx.services.pop()!.stop();
    const input = messages(range(10));
    const err = await rejects(() => withTimeout(ctx.transport.call(node, request('S.Sum', {}, input))));
    assert.ok(isMicroError(err));
    assert.is(err.code, 503);
    assert.ok(err.unreachable, 'nothing ran: the client may go elsewhere');
    assert.is(input.pulled, 0, 'not one message read');
  });

  streams('client.stream over NATS: a server stream, a client stream and a bidi stream fed by send()', async (ctx) => {
    const registry = createMemoryRegistry();
    const service = createService(definition(ctx), { registry, transport: ctx.transport, logger: quiet });
    ctx.services.push(service);
    await withTimeout(service.start(), 5000, 'service start');
    const client = createClient({ registry, transports: [ctx.transport] });
    const counted = await withTimeout(all(client.stream<{ i: number }>('streams', 'S.Count', { n: 300 })));
    assert.equal(
      counted.map((m) => m.i),
      range(300),
    );
    async function* numbers() {
      yield* range(100);
    }
    assert.equal(await withTimeout(all(client.stream('streams', 'S.Sum', numbers()))), [5050]);
    const chat = client.stream<string, string>('streams', 'S.Echo', undefined, { send: true });
    const it = chat[Symbol.asyncIterator]();
    for (const word of ['a', 'b', 'c']) {
      await withTimeout(chat.send(word));
      assert.is((await withTimeout(it.next())).value, word, 'each echo as its message goes');
    }
    await chat.close();
    assert.ok((await withTimeout(it.next())).done);
    let read = 0;
    for await (const _ of client.stream('streams', 'S.Forever', {})) if (++read === 3) break;
    await eventually(() => ctx.seen.aborted && ctx.seen.finallyRan, 5000, "the handler's signal after a break at 3");
  });

  streams.run();

  // ---
  const wire = suite<{ server: NatsServer; raw: NatsConnection; transport: NatsTransport }>(
    'NatsTransport: a stream that breaks the wire rules',
    {} as never,
  );
  wire.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
    ctx.raw = await withTimeout(connect({ servers: ctx.server.url }), 5000, 'connect');
  });
  wire.after(async (ctx) => {
    await withTimeout(ctx.raw?.close() ?? Promise.resolve(), 5000, 'closing the raw connection');
    await withTimeout(ctx.server?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
  });
  wire.before.each((ctx) => {
    ctx.transport = createNatsTransport({ address: ctx.server.url, stream: { heartbeat: 50, idle: 300 } });
  });
  wire.after.each((ctx) => withTimeout(ctx.transport.close(), 5000, 'closing the transport'));

  /** A fake node on the raw connection: answers a request with a stream head, then runs `send` on the first credit. */
  const fakeNode = (ctx: { raw: NatsConnection }, send: (to: string, from: string) => void): NodeRecord => {
    const local = `fake.${crypto.randomUUID()}`;
    let to = '';
    ctx.raw.subscribe('micro.fake.n1.S.Count', {
      max: 1,
      callback: (_e, msg) => {
        const h = headers();
        h.set('micro-stream', 'open');
        ctx.raw.publish(msg.reply!, new Uint8Array(0), { reply: local, headers: h });
      },
    });
    ctx.raw.subscribe(local, {
      callback: (_e, msg) => {
        if (msg.headers?.get('micro-stream') !== 'credit' || to) return;
        to = msg.reply!;
        send(to, local);
      },
    });
    return {
      id: 'n1',
      address: `nats://127.0.0.1:${(ctx as never as { server: NatsServer }).server.port}/fake/n1`,
      metadata: {},
    };
  };
  const data = (raw: NatsConnection, to: string, from: string, seq: number) => {
    const h = headers();
    h.set('micro-stream', 'data');
    h.set('micro-seq', String(seq));
    raw.publish(to, enc.encode(JSON.stringify(seq)), { reply: from, headers: h });
  };

  wire('a gap in the sequence (1, then 3) ends the stream with an error after message 1, not a skip', async (ctx) => {
    const node = fakeNode(ctx, (to, from) => {
      data(ctx.raw, to, from, 1);
      data(ctx.raw, to, from, 3);
    });
    await ctx.raw.flush();
    const response = await withTimeout(ctx.transport.call(node, request('S.Count')));
    const got: unknown[] = [];
    const err = await rejects(() =>
      withTimeout(
        (async () => {
          for await (const m of response.stream!) got.push(JSON.parse(dec.decode(m)));
        })(),
      ),
    );
    assert.equal(got, [1]);
    assert.ok(isMicroError(err));
    assert.match(err.detail, /message 3 arrived when 2 was due/);
  });

  wire('a handler side that goes silent ends the stream with a 503 within the idle limit', async (ctx) => {
    const node = fakeNode(ctx, (to, from) => data(ctx.raw, to, from, 1));
    await ctx.raw.flush();
    const response = await withTimeout(ctx.transport.call(node, request('S.Count')));
    const it = response.stream![Symbol.asyncIterator]();
    assert.is(JSON.parse(dec.decode((await withTimeout(it.next())).value)), 1);
    const err = await rejects(() => withTimeout(it.next(), 5000, 'the idle limit'));
    assert.ok(isMicroError(err));
    assert.is(err.code, 503);
    assert.match(err.detail, /sent nothing for 300 ms/);
  });

  wire(
    'a batch (1-3), then a single message (4): the caller reads 1, 2, 3, 4; its credit offers batches',
    async (ctx) => {
      let offered: string | undefined;
      const node = fakeNode(ctx, (to, from) => {
        const base = to.slice(0, -'.c'.length);
        ctx.raw.publish(`${base}.1-3`, packBatch([1, 2, 3].map((n) => enc.encode(JSON.stringify(n)))));
        ctx.raw.publish(`${base}.4`, enc.encode('4'));
        const h = headers();
        h.set('micro-stream', 'end');
        h.set('micro-seq', '5');
        ctx.raw.publish(to, new Uint8Array(0), { reply: from, headers: h });
      });
      ctx.raw.subscribe('fake.>', {
        callback: (_e, msg) => (offered ??= msg.headers?.get('micro-batch') || undefined),
      });
      await ctx.raw.flush();
      const response = await withTimeout(ctx.transport.call(node, request('S.Count')));
      assert.equal(await withTimeout(collect(response.stream!)), [1, 2, 3, 4]);
      assert.is(offered, String(STREAM_BATCH_BYTES));
    },
  );

  wire(
    'a batch that does not hold what its subject says (1-3 holding 2) ends the stream with an error',
    async (ctx) => {
      const node = fakeNode(ctx, (to) => {
        ctx.raw.publish(`${to.slice(0, -'.c'.length)}.1-3`, packBatch([enc.encode('1'), enc.encode('2')]));
      });
      await ctx.raw.flush();
      const response = await withTimeout(ctx.transport.call(node, request('S.Count')));
      const err = await rejects(() => withTimeout(collect(response.stream!)));
      assert.ok(isMicroError(err));
      assert.is(err.code, 500);
      assert.match(err.detail, /stream messages 1-3 arrived as a batch that does not hold them/);
    },
  );

  /** A raw caller of a real handler's server stream of `n`: the subjects its data came on, and the values. */
  const rawCall = async (ctx: { raw: NatsConnection }, n: number, batch: boolean) => {
    const inbox = `raw.${crypto.randomUUID()}`;
    const subjects: string[] = [];
    const values: number[] = [];
    const ended = new Promise<void>((resolve) => {
      ctx.raw.subscribe(`${inbox}.*`, {
        callback: (_e, msg) => {
          const token = msg.subject.slice(inbox.length + 1);
          const op = msg.headers?.get('micro-stream');
          if (op === 'open') {
            const h = headers();
            h.set('micro-stream', 'credit');
            h.set('micro-credit', String(n + 1)); // the sender learns its source ended when it may pull one more
            h.set('micro-credit-bytes', String(1 << 30));
            if (batch) h.set('micro-batch', '4096');
            ctx.raw.publish(msg.reply!, new Uint8Array(0), { reply: `${inbox}.c`, headers: h });
          } else if (op === 'end') resolve();
          else if (token !== 'c' && token !== 'r') {
            subjects.push(token);
            const dash = token.indexOf('-');
            const bodies =
              dash === -1
                ? [msg.data]
                : unpackBatch(msg.data, Number(token.slice(dash + 1)) - Number(token.slice(0, dash)) + 1)!;
            for (const b of bodies) values.push(JSON.parse(dec.decode(b)).i);
          }
        },
      });
    });
    ctx.raw.publish('micro.streams.S.Count', enc.encode(JSON.stringify({ n })), { reply: `${inbox}.r` });
    await withTimeout(ended, 10_000, 'the end of the raw stream');
    return { subjects, values };
  };

  wire(
    'a sender batches only for a reader that offers it: 2,000 messages as 2,000 without, far fewer with',
    async (ctx) => {
      const service = createService(
        {
          name: 'streams',
          handlers: {
            S: {
              async *Count(req: { n: number }) {
                for (let i = 1; i <= req.n; i++) yield { i };
              },
            },
          },
        },
        { registry: createMemoryRegistry(), transport: ctx.transport, logger: quiet },
      );
      try {
        await withTimeout(service.start(), 5000, 'service start');
        const plain = await rawCall(ctx, 2000, false);
        assert.equal(plain.values, range(2000));
        assert.is(plain.subjects.length, 2000, 'one NATS message each');
        assert.ok(plain.subjects.every((t) => /^\d+$/.test(t)));
        const batched = await rawCall(ctx, 2000, true);
        assert.equal(batched.values, range(2000));
        assert.ok(batched.subjects.length <= 100, `${batched.subjects.length} NATS messages for 2,000`);
        assert.ok(batched.subjects.some((t) => /^\d+-\d+$/.test(t)));
      } finally {
        await withTimeout(service.stop(), 5000, 'stopping the service');
      }
    },
  );

  wire.run();

  // ---
  const oneShot = suite<{ server: NatsServer; transport: NatsTransport }>(
    'MicroFunction over NATS: a stream is the one invocation',
    {} as never,
  );
  oneShot.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
    ctx.transport = createNatsTransport({ address: ctx.server.url });
  });
  oneShot.after(async (ctx) => {
    await withTimeout(ctx.transport?.close() ?? Promise.resolve(), 5000, 'closing the transport');
    await withTimeout(ctx.server?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
  });

  oneShot(
    'serves 1 stream of 2,000, refuses a 2nd request meanwhile with the not-started 503, and ends after it',
    async (ctx) => {
      const fnTransport = createNatsTransport({ address: ctx.server.url });
      const registry = createMemoryRegistry();
      const f = createFunction(
        {
          name: 'once',
          handlers: {
            S: {
              async *Count(req: { n: number }) {
                for (let i = 1; i <= req.n; i++) yield i;
              },
            },
          },
        },
        { registry, transport: fnTransport, logger: quiet },
      );
      try {
        await withTimeout(f.start(), 5000, 'function start');
        let done = false;
        void f.done.then(() => (done = true));
        const [svc] = await registry.getService('once');
        const node = svc!.nodes[0]!;
        const call = (body: unknown) => ({ ...request('S.Count', body), service: 'once' });
        // More than the window: the handler waits for its reader, and the function for its stream.
        const first = await withTimeout(ctx.transport.call(node, call({ n: 2000 })));
        const it = first.stream![Symbol.asyncIterator]();
        assert.is(JSON.parse(dec.decode((await withTimeout(it.next())).value)), 1);
        const second = await withTimeout(ctx.transport.call(node, call({ n: 1 })));
        assert.equal([second.error?.id, second.error?.code], ['micro-fn.not-started', 503]);
        await sleep(50);
        assert.not.ok(done, 'the function waits for its stream');
        let n = 1;
        for (;;) {
          const r = await withTimeout(it.next());
          if (r.done) break;
          n++;
        }
        assert.is(n, 2000, 'all 2,000 messages');
        const outcome = await withTimeout(f.done, 5000, 'the function ending');
        assert.ok(outcome.ok);
      } finally {
        await withTimeout(f.stop(), 5000, 'stopping the function');
        await withTimeout(fnTransport.close(), 5000, 'closing the function transport');
      }
    },
  );

  oneShot.run();

  // ---
  const ws = suite<{ server: NatsServer; transport: NatsTransport; dir: string; services: Service[] }>(
    'NatsTransport streams over WebSocket (nats.ws, as Workers and Deno connect)',
    {} as never,
  );
  ws.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ jetstream: false, websocket: true }), 10_000, 'nats-server');
    ctx.transport = createNatsTransport({ address: ctx.server.url });
    ctx.dir = mkdtempSync(join(tmpdir(), 'micro-fn-nats-ws-'));
    ctx.services = [];
  });
  ws.after(async (ctx) => {
    await withTimeout(Promise.allSettled(ctx.services.map((s) => s.stop())), 10_000, 'stopping the services');
    await withTimeout(ctx.transport?.close() ?? Promise.resolve(), 5000, 'closing the transport');
    await withTimeout(ctx.server?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
    if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
  });

  ws('a caller on nats.ws: server stream of 1,000, client stream sum of 200, bidi echo of 200', async (ctx) => {
    const seen = { produced: 0, aborted: false, finallyRan: false };
    const service = createService(definition({ seen } as Context_), {
      registry: createMemoryRegistry(),
      transport: ctx.transport,
      logger: quiet,
    });
    ctx.services.push(service);
    await withTimeout(service.start(), 5000, 'service start');
    // Bundled as the Workers build bundles the plugin: `nats` is `nats.ws`.
    const { build } = await import('esbuild');
    const outfile = join(ctx.dir, 'index.mjs');
    await build({
      entryPoints: ['test/fixtures/nats-ws-stream/index.ts'],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile,
      alias: { nats: 'nats.ws' },
      logLevel: 'silent',
    });
    const flags =
      typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'function' ? [] : ['--experimental-websocket'];
    const out = await withTimeout(
      new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          [...flags, outfile, ctx.server.websocket!, service.address!],
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout)),
        ),
      ),
      30_000,
      'the nats.ws caller',
    );
    assert.equal(JSON.parse(out), { count: 1000, sum: 20_100, echoed: 200, inOrder: true });
  });

  ws.run();
}
