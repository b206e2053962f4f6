import { connect, headers, type NatsConnection } from 'nats';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ConfigError,
  Metadata,
  createClient,
  errors,
  isMicroError,
  type Listener,
  type NodeRecord,
  type RequestHandler,
} from '../../../../runtime/core/index.js';
import {
  NatsTransport,
  createNatsTransport,
  type NatsServiceInfo,
} from '../../../../runtime/plugins/nats/transport.js';
import { createMemoryRegistry } from '../../../../runtime/plugins/memory/registry.js';
import { serverResponse, transportContract, transportRequest } from '../../../contracts/transport.js';
import { rejects, sleep, withTimeout } from '../../../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';
import { NatsConnections } from '../../../../runtime/plugins/nats/connections.js';

const dec = new TextDecoder();
const greeter: NatsServiceInfo = { name: 'greeter', version: '1.0.0', endpoints: ['Greeter.Hello'] };
const nodeOf = (listener: Listener): NodeRecord => ({ id: 'n', address: listener.address, metadata: {} });
const echo: RequestHandler = async (request, reply) => reply(serverResponse(request.body));

if (natsAvailable()) {
  interface Context {
    server: NatsServer;
    transport: NatsTransport;
    /** A plain `nats` connection, to see what travels on the wire. */
    raw: NatsConnection;
  }

  // ---
  const transport = suite<Context>('NatsTransport', {} as Context);
  transport.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
    ctx.raw = await withTimeout(connect({ servers: ctx.server.url }), 5000, 'connect');
  });
  transport.after(async (ctx) => {
    await withTimeout(ctx.raw?.close() ?? Promise.resolve(), 5000, 'closing the raw connection');
    await withTimeout(ctx.server?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
  });
  transport.before.each((ctx) => {
    ctx.transport = createNatsTransport({ address: ctx.server.url, service: greeter });
  });
  transport.after.each((ctx) => withTimeout(ctx.transport.close(), 5000, 'closing the transport'));

  transport('reaches nats:// addresses; a listener registers nats://HOST:PORT/<service>/<node id>', async (ctx) => {
    assert.equal([...ctx.transport.schemes], ['nats']);
    const listener = await withTimeout(ctx.transport.listen(echo), 5000, 'listen');
    assert.match(listener.address, new RegExp(`^nats://127\\.0\\.0\\.1:${ctx.server.port}/greeter/[A-Za-z0-9]+$`));
  });

  transport(
    'listens through its own server when the listen address is an HTTP bind address (127.0.0.1:0)',
    async (ctx) => {
      const listener = await withTimeout(ctx.transport.listen(echo, { address: '127.0.0.1:0' }), 5000, 'listen');
      const response = await withTimeout(
        ctx.transport.call(nodeOf(listener), transportRequest('Greeter.Hello', '{"x":1}')),
      );
      assert.is(dec.decode(response.body), '{"x":1}');
    },
  );

  transport('sends metadata as lower-case NATS headers and reads reply headers in any case', async (ctx) => {
    let seen: Metadata | undefined;
    let endpoint = '';
    const listener = await ctx.transport.listen(async (request, reply) => {
      seen = request.metadata;
      endpoint = request.endpoint;
      await reply(serverResponse('{}', { 'X-Reply': 'r1' }));
    });
    const node = nodeOf(listener);
    await withTimeout(
      ctx.transport.call(node, transportRequest('Greeter.Hello', '{}', { 'X-Custom': 'abc', 'Micro-Trace-Id': 't-1' })),
    );
    assert.is(seen?.get('x-custom'), 'abc');
    assert.is(endpoint, 'Greeter.Hello'); // from the subject: service and endpoint are not repeated as headers
    assert.is(seen?.get('micro-endpoint'), undefined);

    // A caller that is not micro-fn: mixed-case headers in, and the reply's headers as they are on the wire.
    const subject = `micro.greeter.${node.address.split('/').pop()}.Greeter.Hello`;
    const h = headers();
    h.set('X-Mixed-Case', 'yes');
    const msg = await withTimeout(
      ctx.raw.request(subject, new TextEncoder().encode('{}'), { timeout: 2000, headers: h }),
    );
    assert.is(seen?.get('x-mixed-case'), 'yes');
    assert.ok(
      msg.headers?.keys().includes('x-reply'),
      `lower-case reply metadata, got ${msg.headers?.keys().join(',')}`,
    );
    assert.is(msg.headers?.get('content-type'), 'application/json');
    // A plain JSON reply without metadata is data only, as NATS services answer.
    const plain = await ctx.transport.listen(async (_r, reply) => reply(serverResponse('{"ok":true}')));
    const bare = await withTimeout(
      ctx.raw.request(`micro.greeter.${plain.address.split('/').pop()}.Greeter.Hello`, new TextEncoder().encode('{}'), {
        timeout: 2000,
      }),
    );
    assert.equal([bare.headers, new TextDecoder().decode(bare.data)], [undefined, '{"ok":true}']);
    const called = await withTimeout(ctx.transport.call(nodeOf(plain), transportRequest('Greeter.Hello', '{}')));
    assert.equal([called.contentType, called.error, [...called.metadata]], ['application/json', undefined, []]);
  });

  transport('answers an error with error JSON, micro-error and the NATS Services error headers', async (ctx) => {
    const error = errors.badRequest('greeter', 'name is required');
    const listener = await ctx.transport.listen(async (_r, reply) =>
      reply({
        status: 400,
        contentType: 'application/json',
        body: new TextEncoder().encode(JSON.stringify(error)),
        metadata: new Metadata(),
        error,
      }),
    );
    const subject = `micro.greeter.${listener.address.split('/').pop()}.Greeter.Hello`;
    const msg = await withTimeout(ctx.raw.request(subject, new Uint8Array(), { timeout: 2000 }));
    assert.is(msg.headers?.get('Nats-Service-Error-Code'), '400');
    assert.is(msg.headers?.get('Nats-Service-Error'), 'name is required');
    assert.equal(JSON.parse(msg.headers!.get('micro-error')), error.toJSON());
    assert.equal(JSON.parse(dec.decode(msg.data)), error.toJSON());
  });

  transport(
    'turns a reply with only NATS Services error headers, or an unknown body, into a remote MicroError',
    async (ctx) => {
      const sub = ctx.raw.subscribe('micro.foreign.N1.>', {
        callback: (_err, msg) => {
          const h = headers();
          h.set('Nats-Service-Error-Code', msg.subject.endsWith('Bad.Code') ? 'nonsense' : '429');
          h.set('Nats-Service-Error', 'slow down');
          msg.respond(new TextEncoder().encode('<html>not json</html>'), { headers: h });
        },
      });
      await ctx.raw.flush();
      try {
        const node = { id: 'N1', address: `nats://127.0.0.1:${ctx.server.port}/foreign/N1`, metadata: {} };
        const limited = await withTimeout(ctx.transport.call(node, transportRequest('Any.Thing')));
        assert.equal(limited.error?.toJSON(), {
          id: 'greeter',
          code: 429,
          detail: 'slow down',
          status: 'Too Many Requests',
        });
        const odd = await withTimeout(ctx.transport.call(node, transportRequest('Bad.Code')));
        assert.is(odd.error?.code, 500);
      } finally {
        sub.unsubscribe();
      }
    },
  );

  transport('reaches the node it was given, never another instance of the same service', async (ctx) => {
    const other = createNatsTransport({ address: ctx.server.url, service: greeter });
    try {
      const [a, b] = await Promise.all([
        ctx.transport.listen(async (_r, reply) => reply(serverResponse('"a"'))),
        other.listen(async (_r, reply) => reply(serverResponse('"b"'))),
      ]);
      assert.is.not(a.address, b.address);
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => withTimeout(ctx.transport.call(nodeOf(a), transportRequest('Greeter.Hello')))),
      );
      assert.equal(new Set(answers.map((r) => dec.decode(r.body))), new Set(['"a"']));
      // The shared endpoint subject is served by any instance (queue group): it is there for NATS tooling.
      const shared = await withTimeout(
        ctx.raw.request('micro.greeter.Greeter.Hello', new Uint8Array(), { timeout: 2000 }),
      );
      assert.ok(['"a"', '"b"'].includes(dec.decode(shared.data)));
    } finally {
      await withTimeout(other.close(), 5000, 'closing the other transport');
    }
  });

  transport(
    'rejects a call to a node nobody serves with a retryable 503 marked unreachable (no responders)',
    async (ctx) => {
      const node = { id: 'gone', address: `nats://127.0.0.1:${ctx.server.port}/greeter/NOBODYHERE`, metadata: {} };
      const err = await rejects(() => withTimeout(ctx.transport.call(node, transportRequest('Greeter.Hello'))));
      assert.ok(isMicroError(err), String(err));
      assert.is(err.code, 503);
      assert.ok(err.retryable);
      assert.ok(err.unreachable, 'nobody received it: a client skips the node');
      assert.match(err.detail, /no responders/);
    },
  );

  transport(
    'lets a client go past 3 nodes with no responders to the live one: 20 of 20 calls, 1 run each',
    async (ctx) => {
      let runs = 0;
      const listener = await ctx.transport.listen(async (_r, reply) => (runs++, reply(serverResponse('"pong"'))));
      const registry = createMemoryRegistry();
      const gone = ['g1', 'g2', 'g3'].map((id) => ({
        id,
        address: `nats://127.0.0.1:${ctx.server.port}/greeter/${id.toUpperCase()}GONE`,
        metadata: {},
      }));
      await registry.register({
        name: 'greeter',
        version: '1',
        metadata: {},
        endpoints: [],
        nodes: [...gone, { id: 'live', address: listener.address, metadata: {} }],
      });
      try {
        const client = createClient({ registry, transports: [ctx.transport], retries: 0 });
        for (let i = 0; i < 20; i++) assert.is(await withTimeout(client.call('greeter', 'Greeter.Hello', {})), 'pong');
        assert.is(runs, 20);
      } finally {
        await registry.close?.();
      }
    },
  );

  transport(
    'rejects with a 408 that is not retryable when the deadline passes, and drops the late reply',
    async (ctx) => {
      let late: Promise<void> | undefined;
      const listener = await ctx.transport.listen(async (_r, reply) => {
        await sleep(300);
        late = reply(serverResponse('{}'));
        await late;
      });
      const err = await rejects(() =>
        withTimeout(
          ctx.transport.call(nodeOf(listener), transportRequest('Greeter.Hello'), { deadline: Date.now() + 100 }),
          3000,
          'call',
        ),
      );
      assert.ok(isMicroError(err));
      assert.is(err.code, 408);
      assert.not.ok(err.retryable);
      const passed = await rejects(() =>
        ctx.transport.call(nodeOf(listener), transportRequest('Greeter.Hello'), { deadline: Date.now() - 1 }),
      );
      assert.is((passed as { code?: number }).code, 408, 'a deadline already passed fails at once');
      await sleep(350);
      await withTimeout(late ?? Promise.resolve(), 2000, 'the late reply');
    },
  );

  transport('rejects a server that cannot be reached with a retryable 503', async (ctx) => {
    const lone = createNatsTransport();
    try {
      const node = { id: 'n', address: 'nats://127.0.0.1:1/greeter/X', metadata: {} };
      const err = await rejects(() => withTimeout(lone.call(node, transportRequest('Greeter.Hello')), 5000, 'call'));
      assert.ok(isMicroError(err));
      assert.is(err.code, 503);
      assert.ok(err.retryable);
    } finally {
      await lone.close();
    }
    assert.ok(ctx.transport);
  });

  transport(
    'rejects metadata that cannot be a NATS header, and an endpoint that cannot be a subject, with a 400',
    async (ctx) => {
      const listener = await ctx.transport.listen(echo);
      const bad = await rejects(() =>
        ctx.transport.call(nodeOf(listener), transportRequest('Greeter.Hello', '{}', { 'x-bad': 'two\r\nlines' })),
      );
      assert.is((bad as { code?: number }).code, 400);
      const wild = await rejects(() => ctx.transport.call(nodeOf(listener), transportRequest('Greeter.*')));
      assert.is((wild as { code?: number }).code, 400);
    },
  );

  transport('never hands a publish (no reply subject) to the handler', async (ctx) => {
    let calls = 0;
    const listener = await ctx.transport.listen(async (_r, reply) => {
      calls++;
      await reply(serverResponse('{}'));
    });
    ctx.raw.publish(`micro.greeter.${listener.address.split('/').pop()}.Greeter.Hello`, new Uint8Array());
    await ctx.raw.flush();
    await withTimeout(ctx.transport.call(nodeOf(listener), transportRequest('Greeter.Hello')));
    assert.is(calls, 1);
  });

  transport('close() ends within its closeTimeout when the NATS server is gone', async () => {
    const own = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
    const nats = createNatsTransport({ address: own.url, service: greeter, closeTimeout: 200 });
    try {
      const listener = await withTimeout(nats.listen(echo), 5000, 'listen');
      await own.stop();
      const started = Date.now();
      await withTimeout(listener.close(), 3000, 'close without a server');
      assert.ok(Date.now() - started < 1500, `closed in ${Date.now() - started} ms`);
    } finally {
      await withTimeout(nats.close(), 5000, 'closing the transport');
      await withTimeout(own.cleanup(), 10_000, 'removing nats-server');
    }
  });

  transport('asks for a server and a service it can announce with a ConfigError', async () => {
    const bare = createNatsTransport();
    const noServer = await rejects(() => bare.listen(echo, { address: '127.0.0.1:0' }));
    assert.instance(noServer, ConfigError);
    assert.match((noServer as Error).message, /createNatsTransport\(\{ address/);
    const noService = await rejects(() => bare.listen(echo, { address: 'nats://127.0.0.1:4222' }));
    assert.instance(noService, ConfigError);
    const star = await rejects(() =>
      bare.listen(echo, {
        address: 'nats://127.0.0.1:4222',
        service: { name: 'greeter', version: '1.0.0', endpoints: ['Greeter.*'] },
      }),
    );
    assert.instance(star, ConfigError);
  });

  transport(
    'close() ends its calls still waiting at once with a 503, on a connection another plugin keeps open (1 call, 0 waits to its deadline)',
    async (ctx) => {
      const connections = new NatsConnections();
      const keeper = await connections.acquire(ctx.server.url, 'keeper'); // another plugin of the set
      const nats = createNatsTransport({ address: ctx.server.url, connections });
      const slow: RequestHandler = async (request, reply) => {
        await sleep(3000);
        await reply(serverResponse(request.body));
      };
      const listener = await withTimeout(ctx.transport.listen(slow), 5000, 'listen');
      try {
        const call = nats.call(nodeOf(listener), transportRequest('Greeter.Hello'), { deadline: Date.now() + 20_000 });
        call.catch(() => {});
        await sleep(100);
        const started = Date.now();
        await withTimeout(nats.close(), 5000, 'closing the transport');
        const err = await rejects(() => withTimeout(call, 2000, 'the waiting call'));
        assert.ok(isMicroError(err));
        assert.is(err.code, 503);
        assert.match(err.detail, /closed before the reply arrived/);
        assert.ok(Date.now() - started < 2000, `ended ${Date.now() - started} ms after close`);
      } finally {
        await keeper.release(0);
        await listener.close();
      }
    },
  );

  transport.run();

  // ---
  const factory = suite('createNatsTransport');

  factory('creates a NatsTransport', () => {
    assert.instance(createNatsTransport(), NatsTransport);
  });

  factory.run();

  // ---
  transportContract('nats', async () => {
    const server = await startNatsServer({ jetstream: false });
    const nats = createNatsTransport({
      address: server.url,
      service: { name: 'greeter', version: '1.0.0', endpoints: ['Greeter.Hello'] },
    });
    return {
      transport: nats,
      async cleanup() {
        await nats.close();
        await server.cleanup();
      },
    };
  });
}
