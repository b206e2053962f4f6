/** `micro-fn run --transport nats` serving a stream: one stream is its one invocation; a killed one ends its caller's stream. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Metadata, isMicroError, type NodeRecord, type TransportRequest } from '../../runtime/core/index.js';
import { createNatsTransport, type NatsTransport } from '../../runtime/plugins/nats/transport.js';
import { rejects, withTimeout } from '../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../nats-server.js';
import { cli, start, tempHome, type Running } from './helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

const tick = (body: unknown): TransportRequest => ({
  id: crypto.randomUUID(),
  service: 'ticker',
  endpoint: 'Ticker.Tick',
  contentType: 'application/json',
  body: enc.encode(JSON.stringify(body)),
  metadata: new Metadata(),
});

interface Context {
  nats: NatsServer;
  home: ReturnType<typeof tempHome>;
  caller: NatsTransport;
  runs: Running[];
  /** Starts a one-shot ticker listening on NATS; resolves with its node. */
  run(): Promise<NodeRecord>;
}

const runNats = suite<Context>('micro-fn run --transport nats: streams', {} as Context);

if (natsAvailable()) {
  runNats.before(async (ctx) => {
    ctx.nats = await withTimeout(startNatsServer(), 10_000, 'nats-server');
    ctx.home = tempHome();
    ctx.caller = createNatsTransport({ address: ctx.nats.url });
    ctx.runs = [];
    ctx.run = async () => {
      const env = {
        MICRO_FN_HOME: ctx.home.home,
        MICRO_REGISTRY: 'nats',
        MICRO_REGISTRY_ADDRESS: ctx.nats.url,
      };
      const r = start(['run', 'test/fixtures/ticker', '--transport', 'nats'], env);
      ctx.runs.push(r);
      const [, address] = await r.waitFor(/listening on (nats:\/\/\S+)/);
      return { id: address!.split('/').pop()!, address: address!, metadata: {} };
    };
  });
  runNats.after(async (ctx) => {
    for (const r of ctx.runs ?? []) r.kill();
    await withTimeout(ctx.caller?.close() ?? Promise.resolve(), 5000, 'closing the caller');
    await withTimeout(ctx.nats?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
    ctx.home?.cleanup();
  });

  runNats(
    'serves 1 stream of 20 messages, refuses a 2nd request meanwhile (not-started 503), then exits 0',
    async (ctx) => {
      const node = await ctx.run();
      const response = await withTimeout(ctx.caller.call(node, tick({ n: 20, ms: 50 })));
      assert.ok(response.stream, 'a streamed reply');
      const it = response.stream[Symbol.asyncIterator]();
      const first = JSON.parse(dec.decode((await withTimeout(it.next())).value)) as { i: number; pid: number };
      assert.is(first.i, 1);
      const second = await withTimeout(ctx.caller.call(node, tick({ n: 1 })));
      assert.equal([second.error?.id, second.error?.code], ['micro-fn.not-started', 503]);
      const rest: number[] = [];
      for (;;) {
        const r = await withTimeout(it.next());
        if (r.done) break;
        rest.push((JSON.parse(dec.decode(r.value)) as { i: number }).i);
      }
      assert.equal(
        rest,
        Array.from({ length: 19 }, (_, k) => k + 2),
        'messages 2..20 in order',
      );
      assert.is(await ctx.runs.at(-1)!.exited(15_000), 0, 'exits 0 once its stream ended');
    },
  );

  runNats(
    'micro-fn call over NATS: a server stream one JSON value per line, a client stream from stdin',
    async (ctx) => {
      const env = { MICRO_FN_HOME: ctx.home.home, MICRO_REGISTRY: 'nats', MICRO_REGISTRY_ADDRESS: ctx.nats.url };
      await ctx.run();
      const ticks = await cli(['call', 'ticker', 'Ticker.Tick', '{"n":3}'], env, { timeout: 30_000 });
      assert.is(ticks.code, 0, ticks.stderr);
      assert.equal(
        ticks.stdout
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { i: number }).i),
        [1, 2, 3],
      );
      await ctx.run();
      const sum = await cli(['call', 'ticker', 'Ticker.Sum'], env, { input: '1\n2\n3\n', timeout: 30_000 });
      assert.is(sum.code, 0, sum.stderr);
      assert.equal(JSON.parse(sum.stdout), { sum: 6 });
    },
  );

  runNats(
    'a run process SIGTERMed mid-stream: its handler stops at its signal, the stream ends, it exits',
    async (ctx) => {
      const node = await ctx.run();
      const proc = ctx.runs.at(-1)!;
      const response = await withTimeout(ctx.caller.call(node, tick({ n: 1_000_000, ms: 20 })));
      const it = response.stream![Symbol.asyncIterator]();
      await withTimeout(it.next());
      proc.child.kill('SIGTERM');
      // The ticker ends its loop when its signal fires: a clean end, after the messages it made.
      let read = 1;
      await withTimeout(
        (async () => {
          while (!(await it.next()).done) read++;
        })(),
        10_000,
        "the caller's iteration",
      );
      assert.ok(read < 1_000_000, `${read} read: the stream ended early`);
      assert.is((await response.stream!.end).error, undefined);
      assert.is(await proc.exited(15_000), 0, 'the process exits by itself');
    },
  );

  runNats("a run process SIGKILLed mid-stream: its caller's iteration ends with a 503, not a hang", async (ctx) => {
    const node = await ctx.run();
    const proc = ctx.runs.at(-1)!;
    const response = await withTimeout(ctx.caller.call(node, tick({ n: 1_000_000, ms: 20 })));
    const it = response.stream![Symbol.asyncIterator]();
    await withTimeout(it.next());
    proc.child.kill('SIGKILL');
    const err = await rejects(
      () =>
        withTimeout(
          (async () => {
            for (;;) if ((await it.next()).done) break;
          })(),
          10_000,
          "the caller's iteration",
        ),
      'the iteration ends with an error',
    );
    assert.ok(isMicroError(err), String(err));
    assert.is(err.code, 503);
    assert.match(err.detail, /handler of the stream/);
  });
}

runNats.run();
