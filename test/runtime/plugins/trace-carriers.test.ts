/**
 * The trace context's carriers: a handler's call out over HTTP and over NATS (request headers), and its publish
 * through a broker (message headers: the MemoryBroker in process, NATS core on the wire). Real services on
 * 127.0.0.1 and a real nats-server; each service records spans with a Tracer of its own.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  RecordingTracer,
  createClient,
  createService,
  formatTraceparent,
  parseTraceparent,
  type Broker,
  type Registry,
  type Service,
  type SpanData,
  type Transport,
} from '../../../runtime/core/index.js';
import { createHttpTransport } from '../../../runtime/plugins/http/transport.js';
import { createMemoryBroker } from '../../../runtime/plugins/memory/broker.js';
import { createMemoryRegistry } from '../../../runtime/plugins/memory/registry.js';
import { createNatsBroker } from '../../../runtime/plugins/nats/broker.js';
import { createNatsTransport } from '../../../runtime/plugins/nats/transport.js';
import { eventually, withTimeout } from '../../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../nats-server.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER = '00f067aa0ba902b7';

interface Chain {
  spans: SpanData[];
  /** The traceparent each service's handler saw. */
  seen: Record<string, string | undefined>;
  services: Service[];
  registry: Registry;
}

/** Services a (calls b, publishes `traced`), b and c (subscribes to it), each with a recording tracer. */
async function startChain(transport: () => Transport, broker: Broker): Promise<Chain> {
  const chain: Chain = { spans: [], seen: {}, services: [], registry: createMemoryRegistry() };
  const tracer = (_service: string) =>
    new RecordingTracer({ exporter: async () => ({ export: async (s) => void chain.spans.push(...s) }) });
  const options = (name: string) => ({
    registry: chain.registry,
    broker,
    transport: transport(),
    tracer: tracer(name),
  });
  const a = createService(
    {
      name: 'a',
      handlers: {
        A: {
          async Run(_req: unknown, ctx: { metadata: { get(k: string): string | undefined }; client: any }) {
            chain.seen.a = ctx.metadata.get('traceparent');
            await ctx.client.call('b', 'B.Echo', {});
            await ctx.client.publish('traced', {});
            return {};
          },
        },
      },
    },
    options('a'),
  );
  const b = createService(
    {
      name: 'b',
      handlers: { B: { Echo: (_r: unknown, ctx: any) => void (chain.seen.b = ctx.metadata.get('traceparent')) } },
    },
    options('b'),
  );
  const c = createService(
    {
      name: 'c',
      subscribers: { traced: (_p: unknown, ctx: any) => void (chain.seen.c = ctx.message.headers.traceparent) },
    },
    options('c'),
  );
  chain.services.push(a, b, c);
  for (const s of chain.services) await withTimeout(s.start(), 5000, `starting ${s.name}`);
  return chain;
}

async function runChain(chain: Chain, transport: Transport): Promise<void> {
  const client = createClient({ registry: chain.registry, transports: [transport] });
  await withTimeout(
    client.call('a', 'A.Run', {}, { metadata: { traceparent: `00-${TRACE}-${CALLER}-01`, tracestate: 'k=v' } }),
    5000,
    'the call',
  );
  await eventually(() => chain.seen.c !== undefined, 5000, 'the event handled');
  for (const s of chain.services) await s.tracer.flush(1000);
}

function checkLinks(chain: Chain): void {
  const by = (name: string, kind: string) => chain.spans.find((s) => s.name === name && s.kind === kind)!;
  const a = by('A.Run', 'server');
  const call = by('b/B.Echo', 'client');
  const publish = by('traced publish', 'producer');
  const b = by('B.Echo', 'server');
  const c = by('traced process', 'consumer');
  for (const span of [a, call, publish, b, c]) assert.ok(span, chain.spans.map((s) => s.name).join(', '));
  for (const span of [a, call, publish, b, c]) assert.is(span.context.traceId, TRACE);
  assert.is(chain.seen.a, `00-${TRACE}-${CALLER}-01`, 'A got the caller’s header as sent');
  assert.is(chain.seen.b, formatTraceparent(call.context), 'B got the traceparent of A’s client span');
  assert.is(chain.seen.c, formatTraceparent(publish.context), 'C’s message carried A’s producer span');
  assert.is(a.parent?.spanId, CALLER);
  assert.is(call.parent?.spanId, a.context.spanId);
  assert.is(publish.parent?.spanId, a.context.spanId);
  assert.is(b.parent?.spanId, call.context.spanId);
  assert.ok(b.parent?.remote, 'a parent from a header is remote');
  assert.is(c.parent?.spanId, publish.context.spanId);
  assert.is(b.context.state, 'k=v', 'tracestate passed on through two hops');
  assert.is(parseTraceparent(chain.seen.b)?.flags, 1);
}

async function stopChain(chain: Chain | undefined): Promise<void> {
  for (const s of chain?.services ?? []) await withTimeout(s.stop(), 5000, `stopping ${s.name}`).catch(() => {});
}

// ---
const http = suite('trace context over HTTP and the MemoryBroker');
let httpChain: Chain | undefined;

http.after(() => stopChain(httpChain));

http('a call out and a publish from a handler continue its trace, as children of its span', async () => {
  httpChain = await startChain(() => createHttpTransport(), createMemoryBroker());
  await runChain(httpChain, createHttpTransport());
  checkLinks(httpChain);
});

http.run();

// ---
if (natsAvailable()) {
  const nats = suite('trace context over NATS (request and message headers)');
  let server: NatsServer | undefined;
  let chain: Chain | undefined;
  const opened: { close(): Promise<void> }[] = [];

  nats.before(async () => {
    server = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
  });
  nats.after(async () => {
    await stopChain(chain);
    for (const o of opened) await withTimeout(o.close(), 5000, 'closing').catch(() => {});
    await withTimeout(server?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
  });

  nats('a call out and a publish from a handler continue its trace, as children of its span', async () => {
    const make = () => {
      const t = createNatsTransport({ address: server!.url });
      opened.push(t);
      return t;
    };
    const broker = createNatsBroker({ address: server!.url });
    opened.push(broker);
    chain = await startChain(make, broker);
    await runChain(chain, make());
    checkLinks(chain);
  });

  nats.run();
}
