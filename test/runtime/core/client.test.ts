import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createClient,
  createFunction,
  createService,
  errors,
  isMicroError,
  notStarted,
  roundRobin,
  type Service,
  type ServiceDefinition,
} from '../../../runtime/index.js';
import {
  createMemoryBroker,
  createMemoryRegistry,
  createMemoryTransport,
} from '../../../runtime/plugins/memory/index.js';
import { rejects, sleep, withTimeout } from '../../helpers.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

function setup() {
  const registry = createMemoryRegistry();
  const transport = createMemoryTransport();
  const broker = createMemoryBroker();
  const services: Service[] = [];
  return {
    registry,
    transport,
    broker,
    client: createClient({ registry, transports: [transport], broker, backoff: () => 1 }),
    async start(definition: ServiceDefinition) {
      const s = createService(definition, { registry, transport, broker, logger: quiet });
      services.push(s);
      await s.start();
      return s;
    },
    async close() {
      await Promise.all(services.map((s) => s.stop()));
      await Promise.all([registry.close?.(), broker.close?.(), transport.close?.()]);
    },
  };
}

// ---
const client = suite('Client');
let env: ReturnType<typeof setup>;
client.before.each(() => {
  env = setup();
});
client.after.each(() => env.close());

client('calls an endpoint through the registry and decodes the reply', async () => {
  await env.start({
    name: 'helloworld',
    handlers: { Greeter: { Hello: (r: { name: string }) => ({ message: `Hello ${r.name}` }) } },
  });
  assert.equal(await withTimeout(env.client.call('helloworld', 'Greeter.Hello', { name: 'Ada' })), {
    message: 'Hello Ada',
  });
});

client('carries metadata both ways: request metadata to the handler, response metadata to the caller', async () => {
  await env.start({
    name: 'meta',
    handlers: {
      M: {
        Echo: (_r: unknown, ctx) => {
          ctx.responseMetadata.set('X-Seen', ctx.metadata.get('x-request') ?? 'none');
          ctx.responseMetadata.set('Set-By', 'handler');
          return {};
        },
      },
    },
  });
  const reply = await withTimeout(env.client.request('meta', 'M.Echo', {}, { metadata: { 'X-Request': 'abc' } }));
  assert.is(reply.metadata.get('x-seen'), 'abc');
  assert.is(reply.metadata.get('SET-BY'), 'handler');
});

client(
  'sets Micro-From-Service and carries authorization, namespace, trace id and the deadline to the next hop',
  async () => {
    let seen: { from?: string; auth?: string; ns?: string; trace?: string; deadline?: number } = {};
    await env.start({
      name: 'back',
      handlers: {
        B: {
          Look: (_r: unknown, ctx) => {
            seen = {
              from: ctx.metadata.get('micro-from-service'),
              auth: ctx.metadata.get('authorization'),
              ns: ctx.metadata.get('micro-namespace'),
              trace: ctx.metadata.get('micro-trace-id'),
              deadline: ctx.deadline,
            };
            return {};
          },
        },
      },
    });
    await env.start({
      name: 'front',
      handlers: { F: { Go: (_r: unknown, ctx) => ctx.client.call('back', 'B.Look', {}) } },
    });
    const before = Date.now();
    await withTimeout(
      env.client.call(
        'front',
        'F.Go',
        {},
        {
          timeout: 3000,
          metadata: { Authorization: 'Bearer t', 'Micro-Namespace': 'ns1', 'Micro-Trace-Id': 'tr-1', 'X-Private': 'p' },
        },
      ),
    );
    assert.is(seen.from, 'front');
    assert.is(seen.auth, 'Bearer t');
    assert.is(seen.ns, 'ns1');
    assert.is(seen.trace, 'tr-1');
    assert.ok(
      seen.deadline! > before && seen.deadline! <= before + 3000 + 50,
      `deadline ${seen.deadline! - before} ms after the call`,
    );
  },
);

client('answers 404 for an unknown service without retrying', async () => {
  const err = await rejects(() => env.client.call('nobody', 'X.Y', {}));
  assert.ok(isMicroError(err));
  assert.is(err.code, 404);
  assert.match(err.detail, /service nobody not found/);
});

client('never sends again what a handler answered, whatever its status: each of 5 handlers ran once', async () => {
  const runs: Record<string, number> = {};
  const fail = (name: string, error: () => Error) => () => {
    runs[name] = (runs[name] ?? 0) + 1;
    throw error();
  };
  await env.start({
    name: 'flaky',
    handlers: {
      F: {
        Unavailable: fail('Unavailable', () => errors.unavailable('flaky', 'busy')),
        Throttled: fail('Throttled', () => errors.tooManyRequests('flaky', 'slow down')),
        Timeout: fail('Timeout', () => errors.timeout('flaky', 'too slow')),
        Boom: fail('Boom', () => new Error('boom')),
        // A refusal it got from a call it made and passed on: it ran, so it is not "not started" any more.
        Passed: fail('Passed', () => notStarted(503, 'function other has already taken its one invocation')),
      },
    },
  });
  for (const endpoint of ['Unavailable', 'Throttled', 'Timeout', 'Boom', 'Passed']) {
    const err = await rejects(() => withTimeout(env.client.call('flaky', `F.${endpoint}`, {}, { retries: 3 })));
    assert.ok(isMicroError(err));
    if (endpoint === 'Passed') assert.equal([err.id, err.code], ['flaky', 503]);
  }
  assert.equal(runs, { Unavailable: 1, Throttled: 1, Timeout: 1, Boom: 1, Passed: 1 });
});

client("retries a one-shot function's refusal on another instance: the handler ran once", async () => {
  let runs = 0;
  const definition = { name: 'once', handlers: { O: { Run: () => (runs++, sleep(100).then(() => 'done')) } } };
  const fns = [createFunction(definition, { registry: env.registry, transport: env.transport, logger: quiet })];
  fns.push(createFunction(definition, { registry: env.registry, transport: env.transport, logger: quiet }));
  await Promise.all(fns.map((f) => f.start()));
  try {
    const [first] = await env.registry.getService('once');
    const taken = first!.nodes[0]!.id;
    const pinned = createClient({
      registry: env.registry,
      transports: [env.transport],
      backoff: () => 1,
      selector: (_s, nodes) => nodes.find((n) => n.id === taken) ?? nodes[0]!,
    });
    const a = pinned.call('once', 'O.Run', {});
    await sleep(20); // the first call has taken instance `taken`
    const b = pinned.call('once', 'O.Run', {}, { retries: 1 });
    assert.equal(await withTimeout(Promise.all([a, b])), ['done', 'done']);
    assert.is(runs, 2, 'one run per call');
  } finally {
    await Promise.all(fns.map((f) => f.stop()));
  }
});

client('moves past a dead node to a live one', async () => {
  await env.start({ name: 'svc', handlers: { S: { Ping: () => 'pong' } } });
  await env.registry.register({
    name: 'svc',
    version: 'latest',
    metadata: {},
    endpoints: [],
    nodes: [{ id: 'dead', address: 'memory://gone', metadata: {} }],
  });
  const rr = createClient({
    registry: env.registry,
    transports: [env.transport],
    selector: (_s, nodes) => nodes.find((n) => n.id === 'dead') ?? nodes[0]!,
    backoff: () => 1,
  });
  assert.is(await withTimeout(rr.call('svc', 'S.Ping', {})), 'pong');
});

client('skips unreachable nodes without spending a retry, and in later calls: 3 dead + 1 live, 20 of 20', async () => {
  await env.start({ name: 'svc', handlers: { S: { Ping: () => 'pong' } } });
  await env.registry.register({
    name: 'svc',
    version: 'latest',
    metadata: {},
    endpoints: [],
    nodes: ['d1', 'd2', 'd3'].map((id) => ({ id, address: `memory://${id}`, metadata: {} })),
  });
  const attempts: string[] = [];
  const counting = {
    schemes: env.transport.schemes,
    call: (...args: Parameters<typeof env.transport.call>) => (attempts.push(args[0].id), env.transport.call(...args)),
  };
  // The dead ones first, whatever is left: the worst order.
  const worst = (_s: string, nodes: readonly { id: string }[]) =>
    [...nodes].sort((a, b) => (a.id.startsWith('d') ? -1 : 0) - (b.id.startsWith('d') ? -1 : 0))[0]!;
  const c = createClient({ registry: env.registry, transports: [counting], selector: worst as never, retries: 0 });
  for (let i = 0; i < 20; i++) assert.is(await withTimeout(c.call('svc', 'S.Ping', {})), 'pong');
  assert.is(attempts.filter((id) => id.startsWith('d')).length, 3, 'each dead node tried once in 20 calls');
  // With unreachableFor 0, nothing is remembered: each call goes past them again (still without a retry).
  attempts.length = 0;
  const forgetful = createClient({
    registry: env.registry,
    transports: [counting],
    selector: worst as never,
    retries: 0,
    unreachableFor: 0,
  });
  for (let i = 0; i < 2; i++) assert.is(await withTimeout(forgetful.call('svc', 'S.Ping', {})), 'pong');
  assert.is(attempts.filter((id) => id.startsWith('d')).length, 6);
});

client('tries an unreachable node again when it is the only one left, and forgets it once it answers', async () => {
  let alive = false;
  const svc = { name: 'solo', handlers: { S: { Ping: () => 'pong' } } };
  const transport = {
    schemes: env.transport.schemes,
    call: (...args: Parameters<typeof env.transport.call>) =>
      alive
        ? env.transport.call(...args)
        : Promise.reject(errors.unavailable('solo', 'refused', { unreachable: true })),
  };
  const started = await env.start(svc);
  const c = createClient({ registry: env.registry, transports: [transport], retries: 0 });
  await rejects(() => c.call('solo', 'S.Ping', {}));
  alive = true; // it came back on the same node id
  assert.is(await withTimeout(c.call('solo', 'S.Ping', {})), 'pong');
  assert.ok(started);
});

client('reuses a service lookup, and looks again once a node of it fails', async () => {
  const first = await env.start({ name: 'cached', handlers: { S: { Who: () => 'first' } } });
  let lookups = 0;
  const counted = Object.assign(Object.create(env.registry) as typeof env.registry, {
    getService: (name: string) => (lookups++, env.registry.getService(name)),
  });
  const c = createClient({ registry: counted, transports: [env.transport], backoff: () => 1 });
  for (let i = 0; i < 3; i++) assert.is(await withTimeout(c.call('cached', 'S.Who', {})), 'first');
  assert.is(lookups, 1, 'one registry read for three calls');
  // The node goes away and another takes its place: the cached node fails (retryable), the retry looks again.
  await first.stop();
  await env.start({ name: 'cached', handlers: { S: { Who: () => 'second' } } });
  assert.is(await withTimeout(c.call('cached', 'S.Who', {})), 'second');
  assert.is(lookups, 2);
  const uncached = createClient({ registry: counted, transports: [env.transport], cacheTtl: 0 });
  for (let i = 0; i < 2; i++) await withTimeout(uncached.call('cached', 'S.Who', {}));
  assert.is(lookups, 4, 'cacheTtl 0 reads every time');
});

client('gives up with 408 when the timeout passes', async () => {
  await env.start({ name: 'slow', handlers: { S: { Wait: () => sleep(500) } } });
  const started = Date.now();
  const err = await rejects(() => env.client.call('slow', 'S.Wait', {}, { timeout: 50 }));
  assert.ok(isMicroError(err));
  assert.is(err.code, 408);
  assert.ok(Date.now() - started < 400, 'it did not wait for the handler');
});

client('fails clearly without a transport for the node address scheme', async () => {
  await env.registry.register({
    name: 'far',
    version: '1',
    metadata: {},
    endpoints: [],
    nodes: [{ id: 'n', address: 'carrier-pigeon://x', metadata: {} }],
  });
  const err = await rejects(() => env.client.call('far', 'X.Y', {}));
  assert.match((err as Error).message, /no transport for "carrier-pigeon"/);
});

client('publishes through the broker with the codec and From-Service', async () => {
  const got: { body: string; headers: Record<string, string> }[] = [];
  await env.broker.subscribe(
    't',
    async (d) => void got.push({ body: new TextDecoder().decode(d.message.body), headers: d.message.headers }),
  );
  await createClient({ broker: env.broker, fromService: 'me' }).publish('t', { id: 1 });
  await withTimeout(
    (async () => {
      while (got.length === 0) await sleep(5);
    })(),
  );
  assert.is(got[0]!.body, '{"id":1}');
  assert.is(got[0]!.headers['content-type'], 'application/json');
  assert.is(got[0]!.headers['micro-from-service'], 'me');
});

client('loads its plugins on the first call only, shared with the clients made from it', async () => {
  await env.start({ name: 'svc', handlers: { S: { Ping: () => 'pong' } } });
  let loads = 0;
  let loaded: Promise<{ registry: typeof env.registry; transports: [typeof env.transport] }> | undefined;
  const load = () =>
    (loaded ??=
      (loads++, Promise.resolve({ registry: env.registry, transports: [env.transport] as [typeof env.transport] })));
  const lazy = createClient({ load });
  assert.is(loads, 0, 'nothing is loaded up front');
  const child = lazy.with({ fromService: 'me' });
  assert.is(await withTimeout(lazy.call('svc', 'S.Ping', {})), 'pong');
  assert.is(await withTimeout(child.call('svc', 'S.Ping', {})), 'pong');
  assert.is(await withTimeout(lazy.with({}).call('svc', 'S.Ping', {})), 'pong');
  assert.is(loads, 1);
});

client.run();

// ---
const rr = suite('roundRobin');

rr('visits every node in turn', () => {
  const select = roundRobin();
  const nodes = ['a', 'b', 'c'].map((id) => ({ id, address: `memory://${id}`, metadata: {} }));
  const picks = Array.from({ length: 6 }, () => select('s', nodes).id);
  assert.equal(new Set(picks.slice(0, 3)).size, 3);
  assert.equal(picks.slice(0, 3), picks.slice(3));
});

rr.run();

// ---
const without = suite('ctx.client in a bundle built without the client (__MICRO_FN_NO_CLIENT__)');
without.before(() => {
  globalThis.__MICRO_FN_NO_CLIENT__ = true;
});
without.after(() => {
  globalThis.__MICRO_FN_NO_CLIENT__ = undefined;
});

without(
  'serves a handler that never calls out, and answers one that does with a 500 saying to build again; 0 plugin loads',
  async () => {
    const { Runner, Metadata } = await import('../../../runtime/index.js');
    let loads = 0;
    const runner = new Runner(
      {
        name: 'fn',
        handlers: {
          G: {
            Hello: () => ({ message: 'hi' }),
            Out: async (_req: unknown, ctx) => ctx.client.call('other', 'X.Y', {}),
          },
        },
      },
      {
        env: {},
        plugins: async () => (loads++, { transports: [], close: async () => {} }),
        report: () => {},
      },
    );
    const invoke = (endpoint: string) =>
      runner.invoke({
        id: 'r',
        service: 'fn',
        endpoint,
        contentType: 'application/json',
        body: new TextEncoder().encode('{}'),
        metadata: new Metadata(),
      });
    const hello = await invoke('G.Hello');
    assert.is(hello.status, 200);
    const out = await invoke('G.Out');
    assert.is(out.status, 500);
    assert.match(new TextDecoder().decode(out.body), /this bundle was built without the client .*: build it again/);
    assert.is(loads, 0, 'the plugins were never loaded');
  },
);

without.run();
