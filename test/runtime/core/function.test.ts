/** DESIGN.md §4, rule by rule, against the real memory and HTTP plugins. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  createFunction,
  Metadata,
  ONE_SHOT_REGISTRATION,
  type Context,
  type MicroFunction,
  type ServiceDefinition,
  type ServerRequest,
} from '../../../runtime/index.js';
import {
  createMemoryBroker,
  createMemoryRegistry,
  createMemoryTransport,
} from '../../../runtime/plugins/memory/index.js';
import { createHttpTransport } from '../../../runtime/plugins/http/index.js';
import { eventually, sleep, withTimeout } from '../../helpers.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

function request(endpoint: string, body: unknown = {}): ServerRequest {
  return {
    id: crypto.randomUUID(),
    service: 'fn',
    endpoint,
    contentType: 'application/json',
    body: enc.encode(JSON.stringify(body)),
    metadata: new Metadata(),
  };
}

/** `hold`: milliseconds each call of Echo.Say sleeps, or a promise it waits for. */
function counting(hold: number | Promise<void> = 0) {
  const calls: unknown[] = [];
  const definition: ServiceDefinition = {
    name: 'fn',
    handlers: {
      Echo: {
        async Say(req: unknown) {
          calls.push(req);
          if (typeof hold !== 'number') await hold;
          else if (hold) await sleep(hold);
          return { echo: req };
        },
        Fail() {
          throw new Error('boom: secret detail');
        },
        Reject() {
          throw Object.assign(new Error('no'), {
            name: 'MicroError',
            code: 409,
            id: 'fn',
            detail: 'taken',
            status: 'Conflict',
          });
        },
      },
    },
  };
  return { calls, definition };
}

// ---
const once = suite('MicroFunction: exactly one invocation');
const open: MicroFunction[] = [];
once.after.each(async () => {
  await Promise.all(open.splice(0).map((f) => f.stop()));
});

once('serves the first request and refuses the next with a retryable 503 whose handler never runs', async () => {
  const { calls, definition } = counting();
  const fn = createFunction(definition);
  open.push(fn);
  await fn.start();
  const first = await fn.invoke(request('Echo.Say', { n: 1 }));
  assert.is(first.status, 200);
  assert.equal(JSON.parse(dec.decode(first.body)), { echo: { n: 1 } });
  const second = await fn.invoke(request('Echo.Say', { n: 2 }));
  assert.is(second.status, 503);
  assert.ok(second.error?.retryable);
  assert.equal(JSON.parse(dec.decode(second.body)).code, 503);
  assert.equal(calls, [{ n: 1 }]);
  assert.equal(await withTimeout(fn.done), { kind: 'request', endpoint: 'Echo.Say', ok: true, error: undefined });
});

once('answers 20 concurrent HTTP requests with one handler run and 19 retryable 503s', async () => {
  // The handler that runs holds its reply until the other 19 have been answered, so all 20 are in flight at
  // once however slowly they are sent (the first fetch of a process loads its HTTP client: ~0.1 s).
  let release!: () => void;
  const { calls, definition } = counting(new Promise<void>((resolve) => (release = resolve)));
  const registry = createMemoryRegistry();
  const transport = createHttpTransport();
  const fn = createFunction(definition, { registry, transport, address: '127.0.0.1:0' });
  open.push(fn);
  await fn.start();
  const node = { id: fn.service.id, address: fn.service.address!, metadata: {} };
  let answered = 0;
  const send = async (i: number) => {
    const response = await transport.call(node, request('Echo.Say', { i }));
    if (response.error && ++answered === 19) release();
    return response;
  };
  try {
    const responses = await withTimeout(
      Promise.all(Array.from({ length: 20 }, (_, i) => send(i))),
      5000,
      '20 concurrent calls',
    );
    const ok = responses.filter((r) => !r.error);
    const refused = responses.filter((r) => r.error?.code === 503);
    assert.is(ok.length, 1);
    assert.is(refused.length, 19);
    assert.ok(refused.every((r) => r.error!.retryable));
    assert.is(calls.length, 1);
    const outcome = await withTimeout(fn.done);
    assert.is(outcome.kind, 'request');
    assert.equal(await registry.getService('fn'), []);
  } finally {
    await transport.close?.();
    await registry.close?.();
  }
});

once('does not take a broker message once an RPC request has arrived', async () => {
  const broker = createMemoryBroker();
  const handled: string[] = [];
  const definition: ServiceDefinition = {
    name: 'fn',
    handlers: { Echo: { Say: async () => (handled.push('rpc'), sleep(30)) } },
    subscribers: { topic: () => void handled.push('message') },
  };
  const fn = createFunction(definition, { broker });
  open.push(fn);
  await fn.start();
  const reply = fn.invoke(request('Echo.Say'));
  await broker.publish('topic', { body: enc.encode('{}'), headers: { 'content-type': 'application/json' } });
  await reply;
  await withTimeout(fn.done);
  await sleep(20);
  assert.equal(handled, ['rpc']);
  await broker.close?.();
});

once.run();

// ---
const flush = suite('MicroFunction: reply before deregistration');

flush('deregisters only after the reply has been handed over completely', async () => {
  const events: string[] = [];
  const registry = createMemoryRegistry();
  const deregister = registry.deregister.bind(registry);
  registry.deregister = async (s) => {
    events.push('deregister');
    return deregister(s);
  };
  const transport = createMemoryTransport();
  const fn = createFunction(
    { name: 'fn', handlers: { Big: { Get: () => 'x'.repeat(1 << 20) } } },
    { registry, transport },
  );
  await fn.start();
  const reply = async () => {
    await sleep(30); // a slow socket
    events.push('reply flushed');
  };
  await fn.invoke(request('Big.Get'), reply);
  await withTimeout(fn.done);
  assert.equal(events, ['reply flushed', 'deregister']);
  await registry.close?.();
});

flush.run();

// ---
const probe = suite('MicroFunction: health probes');

probe('answers health probes without using up the invocation', async () => {
  const { calls, definition } = counting();
  const fn = createFunction(definition);
  await fn.start();
  for (let i = 0; i < 3; i++) {
    const health = await fn.invoke({ ...request('Debug.Health'), probe: true });
    assert.is(health.status, 200);
    assert.equal(JSON.parse(dec.decode(health.body)), { status: 'ok' });
  }
  assert.ok(fn.waiting);
  assert.is((await fn.invoke(request('Echo.Say', { a: 1 }))).status, 200);
  assert.is(calls.length, 1);
  await withTimeout(fn.done);
  // After the invocation a probe is still answered (until the listener closes), and still free.
  assert.is((await fn.invoke(request('Debug.Health'))).status, 200);
});

probe(
  'a stream probe (the warm-up under serve) streams one health item, runs no handler and leaves the invocation',
  async () => {
    let ran = 0;
    const fn = createFunction({
      name: 'fn',
      handlers: {
        S: {
          async *Count() {
            ran++;
            yield { i: 1 };
          },
        },
      },
    });
    await fn.start();
    const items = async (stream: AsyncIterable<Uint8Array> | undefined) => {
      const out: unknown[] = [];
      for await (const item of stream ?? []) out.push(JSON.parse(dec.decode(item)));
      return out;
    };
    for (let i = 0; i < 2; i++) {
      const health = await fn.invoke({ ...request('Debug.Health'), probe: 'stream' });
      assert.is(health.status, 200);
      assert.equal(await items(health.stream), [{ status: 'ok' }]);
    }
    assert.is(ran, 0);
    assert.ok(fn.waiting, 'the probes used no shot');
    const reply = await fn.invoke(request('S.Count'));
    assert.equal(await items(reply.stream), [{ i: 1 }]);
    assert.is(ran, 1);
    await withTimeout(fn.done);
  },
);

probe.run();

// ---
const idle = suite('MicroFunction: idle timeout');

idle('ends a function that received nothing, deregistered', async () => {
  const registry = createMemoryRegistry();
  const transport = createMemoryTransport();
  const fn = createFunction(counting().definition, { registry, transport, idleTimeout: 50 });
  await fn.start();
  assert.is((await registry.getService('fn')).length, 1);
  assert.equal(await withTimeout(fn.done, 2000), { kind: 'idle', ok: true });
  assert.equal(await registry.getService('fn'), []);
  assert.is((await fn.invoke(request('Echo.Say'))).status, 503, 'nothing is served after it ended');
  await registry.close?.();
});

idle('is cancelled by the invocation', async () => {
  const fn = createFunction(counting(80).definition, { idleTimeout: 40 });
  await fn.start();
  const res = await fn.invoke(request('Echo.Say'));
  assert.is(res.status, 200);
  assert.is((await withTimeout(fn.done)).kind, 'request');
});

idle.run();

// ---
const failing = suite('MicroFunction: handler errors');

failing('sends a thrown bug as a 500 error JSON without its message and still ends', async () => {
  const fn = createFunction(counting().definition, { logger: { debug() {}, info() {}, warn() {}, error() {} } });
  await fn.start();
  const res = await fn.invoke(request('Echo.Fail'));
  assert.is(res.status, 500);
  const body = JSON.parse(dec.decode(res.body));
  assert.equal(body, { id: 'fn', code: 500, detail: 'internal server error', status: 'Internal Server Error' });
  const outcome = await withTimeout(fn.done);
  assert.is(outcome.ok, false);
  assert.is(outcome.kind === 'request' && outcome.error?.code, 500);
});

failing('sends a MicroError as it is', async () => {
  const fn = createFunction(counting().definition);
  await fn.start();
  const res = await fn.invoke(request('Echo.Reject'));
  assert.equal(JSON.parse(dec.decode(res.body)), { id: 'fn', code: 409, detail: 'taken', status: 'Conflict' });
  assert.is((await withTimeout(fn.done)).ok, false);
});

failing.run();

// ---
const spent = suite('MicroFunction: only the handler spends the one shot');

spent(
  'answers each request that cannot reach the handler with its error and keeps waiting for its invocation',
  async () => {
    const { calls, definition } = counting();
    const fn = createFunction(definition);
    await fn.start();
    const cases: [string, ServerRequest, number][] = [
      ['another service', { ...request('Echo.Say'), service: 'other' }, 404],
      ['an unknown endpoint', request('Echo.Nope'), 404],
      ['an unsupported content type', { ...request('Echo.Say'), contentType: 'application/xml' }, 400],
      ['malformed JSON', { ...request('Echo.Say'), body: enc.encode('{"a":') }, 400],
    ];
    for (const [what, req, code] of cases) {
      assert.is((await fn.invoke(req)).status, code, what);
      assert.ok(fn.waiting, `still waiting after ${what}`);
    }
    assert.equal(calls, [], 'no handler ran');
    const real = await fn.invoke(request('Echo.Say', { n: 1 }));
    assert.is(real.status, 200);
    assert.equal(calls, [{ n: 1 }], 'the one real invocation ran, once');
    assert.equal(await withTimeout(fn.done), { kind: 'request', endpoint: 'Echo.Say', ok: true, error: undefined });
  },
);

spent.run();

// ---
const deadlines = suite('MicroFunction: deadlines');

/** A handler that never settles and records its signal's reason; `settle` lets it end once the signal fires. */
function stuck(settle = false) {
  const seen: { aborted: unknown[]; ended: number } = { aborted: [], ended: 0 };
  const definition: ServiceDefinition = {
    name: 'fn',
    handlers: {
      Stuck: {
        Wait(_req: unknown, ctx: Context) {
          return new Promise((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              seen.aborted.push(ctx.signal.reason);
              if (settle)
                setTimeout(() => {
                  seen.ended++;
                  resolve({ late: true });
                }, 20);
            });
          });
        },
      },
    },
    subscribers: { t: (_p: unknown, ctx) => new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r())) },
  };
  return { seen, definition };
}

const timed = (ms: number, endpoint = 'Stuck.Wait') => ({
  ...request(endpoint),
  metadata: new Metadata({ 'micro-timeout': String(ms) }),
});

deadlines("answers 408 at the caller's deadline, fires ctx.signal with it, and ends within the grace", async () => {
  const { seen, definition } = stuck();
  const fn = createFunction(definition, { grace: 100 });
  await fn.start();
  const started = Date.now();
  const res = await withTimeout(fn.invoke(timed(80)), 3000, 'the 408');
  assert.is(res.status, 408);
  assert.is(JSON.parse(dec.decode(res.body)).code, 408);
  assert.is(seen.aborted.length, 1);
  assert.is((seen.aborted[0] as { code: number }).code, 408);
  const outcome = await withTimeout(fn.done, 3000, 'the function ending');
  assert.is(outcome.kind, 'request');
  assert.is('error' in outcome && outcome.error?.code, 408);
  assert.ok(Date.now() - started >= 80, 'not before the deadline');
});

deadlines(
  "takes the function's timeout when the caller sets no deadline, and the earlier of the two when it does",
  async () => {
    for (const [caller, expect] of [
      [undefined, 'timeout'],
      [60_000, 'timeout'],
      [50, 'caller'],
    ] as const) {
      const { seen, definition } = stuck();
      const fn = createFunction(definition, { timeout: caller === 50 ? 60_000 : 60, grace: 10 });
      await fn.start();
      const res = await withTimeout(
        fn.invoke(caller === undefined ? request('Stuck.Wait') : timed(caller)),
        3000,
        `the 408 (${expect})`,
      );
      assert.is(res.status, 408, `caller ${caller}`);
      assert.is(seen.aborted.length, 1);
      await withTimeout(fn.done);
    }
  },
);

deadlines('waits for a handler that winds down within the grace before it ends', async () => {
  const { seen, definition } = stuck(true);
  const fn = createFunction(definition, { grace: 2000 });
  await fn.start();
  assert.is((await withTimeout(fn.invoke(timed(30)), 3000)).status, 408);
  await withTimeout(fn.done, 3000);
  assert.is(seen.ended, 1, 'the handler ended before done resolved');
});

deadlines('fails a message whose subscriber runs past the timeout with 408, so it is redelivered', async () => {
  const { definition } = stuck();
  const fn = createFunction(definition, { timeout: 50, grace: 10 });
  await fn.start();
  const outcome = await withTimeout(
    fn.deliver({ id: '1', topic: 't', headers: { 'content-type': 'application/json' }, body: enc.encode('{}') }),
    3000,
  );
  assert.is(outcome.ok, false);
  assert.is(outcome.error?.code, 408);
  await withTimeout(fn.done);
});

deadlines(
  "stop() while serving fires the signal; the handler's answer within the grace reaches the caller",
  async () => {
    const { seen, definition } = stuck(true);
    const fn = createFunction(definition, { grace: 2000 });
    await fn.start();
    const pending = fn.invoke(request('Stuck.Wait'));
    await sleep(20);
    const stopped = fn.stop();
    const res = await withTimeout(pending, 3000);
    assert.is(res.status, 200);
    assert.equal(JSON.parse(dec.decode(res.body)), { late: true });
    assert.is((seen.aborted[0] as { code: number }).code, 503);
    assert.is((await withTimeout(stopped)).ok, true);
  },
);

deadlines('stop() while serving answers 503 once the grace has passed without an answer, and ends', async () => {
  const { definition } = stuck();
  const fn = createFunction(definition, { grace: 50 });
  await fn.start();
  const pending = fn.invoke(request('Stuck.Wait'));
  await sleep(20);
  const stopped = fn.stop();
  const res = await withTimeout(pending, 3000, 'the 503');
  assert.is(res.status, 503);
  assert.match(JSON.parse(dec.decode(res.body)).detail, /stopped while its handler ran/);
  const outcome = await withTimeout(stopped, 3000, 'the function ending');
  assert.is('error' in outcome && outcome.error?.code, 503);
});

deadlines.run();

// ---
const registration = suite('MicroFunction: registration');

registration(
  'registers with a TTL of seconds, refreshed while waiting, no longer once its invocation arrived',
  async () => {
    const registered: number[] = [];
    const registry = createMemoryRegistry();
    const register = registry.register.bind(registry);
    registry.register = async (s, o) => {
      registered.push(o?.ttl ?? 0);
      return register(s, o);
    };
    let release!: () => void;
    const fn = createFunction(counting(new Promise<void>((r) => (release = r))).definition, {
      registry,
      transport: createMemoryTransport(),
    });
    await fn.start();
    assert.equal(ONE_SHOT_REGISTRATION, { ttl: 6, interval: 2 });
    assert.equal(registered, [6]);
    await sleep(2100);
    assert.equal(registered, [6, 6], 'refreshed while waiting');
    const served = fn.invoke(request('Echo.Say'));
    await sleep(2100);
    assert.equal(registered, [6, 6], 'not refreshed while serving');
    release();
    await withTimeout(served);
    await withTimeout(fn.done);
    await registry.close?.();
  },
);

registration('keeps the TTL the configuration sets', async () => {
  const registered: number[] = [];
  const registry = createMemoryRegistry();
  const register = registry.register.bind(registry);
  registry.register = async (s, o) => {
    registered.push(o?.ttl ?? 0);
    return register(s, o);
  };
  const fn = createFunction(counting().definition, {
    registry,
    transport: createMemoryTransport(),
    env: { MICRO_REGISTER_TTL: '60' },
  });
  await fn.start();
  assert.equal(registered, [60]);
  await fn.stop();
  await registry.close?.();
});

registration.run();

// ---
const messages = suite('MicroFunction: broker messages');

messages('nakks a failed message so the next instance handles it: nothing is lost', async () => {
  const broker = createMemoryBroker();
  const seen: { fn: string; attempt: number; payload: unknown }[] = [];
  const make = (id: string, fail: boolean) =>
    createFunction(
      {
        name: 'worker',
        subscribers: {
          'user.created': (payload, ctx) => {
            seen.push({ fn: id, attempt: ctx.attempt, payload });
            if (fail) throw new Error('transient');
          },
        },
      },
      { broker, logger: { debug() {}, info() {}, warn() {}, error() {} } },
    );
  const a = make('a', true);
  await a.start();
  await broker.publish('user.created', {
    body: enc.encode('{"id":1}'),
    headers: { 'content-type': 'application/json' },
  });
  const outcome = await withTimeout(a.done);
  assert.is(outcome.kind, 'message');
  assert.is(outcome.ok, false);

  const b = make('b', false);
  await b.start();
  assert.equal(await withTimeout(b.done), { kind: 'message', topic: 'user.created', ok: true });
  assert.equal(seen, [
    { fn: 'a', attempt: 1, payload: { id: 1 } },
    { fn: 'b', attempt: 2, payload: { id: 1 } },
  ]);
  await broker.close?.();
});

messages('gives each of two functions in a queue group exactly one of two messages', async () => {
  const broker = createMemoryBroker();
  const got: string[] = [];
  const fns = ['a', 'b'].map((id) =>
    createFunction(
      { name: 'worker', subscribers: { t: (p: { n: number }) => void got.push(`${id}:${p.n}`) } },
      { broker },
    ),
  );
  for (const f of fns) await f.start();
  for (const n of [1, 2])
    await broker.publish('t', {
      body: enc.encode(JSON.stringify({ n })),
      headers: { 'content-type': 'application/json' },
    });
  await withTimeout(Promise.all(fns.map((f) => f.done)));
  assert.is(got.length, 2);
  assert.equal(got.map((g) => g.split(':')[1]).sort(), ['1', '2']);
  assert.equal(new Set(got.map((g) => g.split(':')[0])).size, 2);
  await broker.close?.();
});

messages('deliver() hands one message directly and refuses a second', async () => {
  const got: unknown[] = [];
  const fn = createFunction({ name: 'w', subscribers: { t: (p) => void got.push(p) } });
  await fn.start();
  const msg = { id: '1', topic: 't', headers: { 'content-type': 'application/json' }, body: enc.encode('{"a":1}') };
  assert.equal(await fn.deliver(msg), { ok: true });
  const second = await fn.deliver({ ...msg, id: '2' });
  assert.is(second.ok, false);
  assert.is(second.error?.code, 503);
  assert.equal(got, [{ a: 1 }]);
  await withTimeout(fn.done);
});

messages('unsubscribes from every topic once its one message arrived', async () => {
  const broker = createMemoryBroker();
  const got: string[] = [];
  const fn = createFunction(
    { name: 'w', subscribers: { a: () => void got.push('a'), b: () => void got.push('b') } },
    { broker },
  );
  await fn.start();
  await broker.publish('a', { body: enc.encode('{}') });
  await withTimeout(fn.done);
  // Another member of the same queue group on b: had the function stayed subscribed, some of these would
  // first have been handed to it, nakked, and reached the member as attempt 2.
  const attempts: number[] = [];
  await broker.subscribe('b', async (d) => void attempts.push(d.attempt), { queue: 'w' });
  for (let i = 0; i < 5; i++) await broker.publish('b', { body: enc.encode('{}') });
  await eventually(() => attempts.length === 5, 2000, 'five messages on b reach the other member');
  assert.equal(attempts, [1, 1, 1, 1, 1]);
  assert.equal(got, ['a']);
  await broker.close?.();
});

messages.run();
