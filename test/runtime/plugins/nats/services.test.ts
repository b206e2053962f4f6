/**
 * The NATS Services API sees micro-fn services: checked with the `nats` package's own services client
 * (what `nats micro ls|info|stats` does), not with anything of ours.
 */
import {
  connect,
  type NatsConnection,
  type ServiceClient,
  type ServiceIdentity,
  type ServiceInfo,
  type ServiceStats,
} from 'nats';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createFunction, type Listener } from '../../../../runtime/core/index.js';
import { createMemoryRegistry } from '../../../../runtime/plugins/memory/index.js';
import { createNatsTransport, type NatsTransport } from '../../../../runtime/plugins/nats/transport.js';
import { serverResponse, transportRequest } from '../../../contracts/transport.js';
import { rejects, sleep, withTimeout } from '../../../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../../nats-server.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const service = {
  name: 'greeter',
  version: 'latest',
  endpoints: ['Greeter.Hello', 'Greeter.Bye'],
  description: 'says hello',
};
/** The NATS service instance id is the last part of a node address. */
const idOf = (listener: Listener) => listener.address.split('/').pop()!;

/** Everything a services-client query yields (it ends after its jitter timer), bounded. */
async function all<T>(query: Promise<AsyncIterable<T>>): Promise<T[]> {
  const collect = async () => {
    const out: T[] = [];
    for await (const item of await query) out.push(item);
    return out;
  };
  return withTimeout(collect(), 5000, 'a $SRV query');
}

if (natsAvailable()) {
  interface Context {
    server: NatsServer;
    transports: NatsTransport[];
    listeners: Listener[];
    monitor: NatsConnection;
    client: ServiceClient;
  }

  // ---
  const services = suite<Context>('NatsTransport in the NATS Services API', {} as Context);
  services.before(async (ctx) => {
    ctx.server = await withTimeout(startNatsServer({ jetstream: false }), 10_000, 'nats-server');
    ctx.transports = [
      createNatsTransport({ address: ctx.server.url, service }),
      createNatsTransport({ address: ctx.server.url, service }),
    ];
    ctx.listeners = await withTimeout(
      Promise.all(ctx.transports.map((t) => t.listen(async (_r, reply) => reply(serverResponse('{"ok":true}'))))),
      5000,
      'listen',
    );
    ctx.monitor = await withTimeout(
      connect({ servers: ctx.server.url, name: 'services test monitor' }),
      5000,
      'connect',
    );
    ctx.client = ctx.monitor.services.client();
  });
  services.after(async (ctx) => {
    await withTimeout(Promise.all((ctx.transports ?? []).map((t) => t.close())), 5000, 'closing the transports');
    await withTimeout(ctx.monitor?.close() ?? Promise.resolve(), 5000, 'closing the monitor');
    await withTimeout(ctx.server?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
  });

  services(
    '$SRV.PING finds every instance, by name and by id; go-micro\'s "latest" is 0.0.0 with the original in metadata',
    async (ctx) => {
      const ids = ctx.listeners.map(idOf).sort();
      const everyone = await all<ServiceIdentity>(ctx.client.ping());
      assert.equal(
        everyone
          .filter((s) => s.name === 'greeter')
          .map((s) => s.id)
          .sort(),
        ids,
      );
      const byName = await all<ServiceIdentity>(ctx.client.ping('greeter'));
      assert.equal(byName.map((s) => s.id).sort(), ids);
      const one = await all<ServiceIdentity>(ctx.client.ping('greeter', ids[0]));
      assert.is(one.length, 1);
      assert.is(one[0]!.version, '0.0.0');
      assert.is(one[0]!.metadata?.['micro-version'], 'latest');
      assert.is(one[0]!.metadata?.['micro-service'], 'greeter');
    },
  );

  services(
    '$SRV.INFO lists one endpoint per Service.Method on micro.<service>.<Service.Method>, and the node subject',
    async (ctx) => {
      const id = idOf(ctx.listeners[0]!);
      const [info] = await all<ServiceInfo>(ctx.client.info('greeter', id));
      assert.ok(info, 'an INFO reply');
      assert.is(info.description, 'says hello');
      const endpoints = Object.fromEntries(info.endpoints.map((e) => [e.name, e]));
      assert.equal(Object.keys(endpoints).sort(), ['Greeter_Bye', 'Greeter_Hello', 'direct']);
      assert.is(endpoints.Greeter_Hello!.subject, 'micro.greeter.Greeter.Hello');
      assert.is(endpoints.Greeter_Hello!.metadata?.['micro-endpoint'], 'Greeter.Hello');
      assert.is(endpoints.Greeter_Hello!.queue_group, 'q');
      assert.is(endpoints.direct!.subject, `micro.greeter.${id}.>`);
      const everyInfo = await all<ServiceInfo>(ctx.client.info('greeter'));
      assert.is(everyInfo.length, 2);
    },
  );

  services(
    '$SRV.STATS counts calls through the transport (node subject) and through the endpoint subject',
    async (ctx) => {
      const [a] = ctx.listeners;
      const transport = ctx.transports[0]!;
      const node = { id: 'a', address: a!.address, metadata: {} };
      for (let i = 0; i < 3; i++) await withTimeout(transport.call(node, transportRequest('Greeter.Hello')));
      await withTimeout(ctx.monitor.request('micro.greeter.Greeter.Bye', new Uint8Array(), { timeout: 2000 }));
      const stats = await all<ServiceStats>(ctx.client.stats('greeter'));
      assert.is(stats.length, 2);
      const mine = stats.find((s) => s.id === idOf(a!))!;
      const count = (s: ServiceStats, name: string) => s.endpoints?.find((e) => e.name === name)?.num_requests ?? -1;
      assert.is(count(mine, 'direct'), 3);
      assert.is(count(mine, 'Greeter_Hello'), 0, 'calls to the node do not use the shared subject');
      assert.is(
        stats.reduce((n, s) => n + count(s, 'Greeter_Bye'), 0),
        1,
        'one instance of the queue group served it',
      );
    },
  );

  services('a stopped listener leaves the Services API at once', async (ctx) => {
    const lone = createNatsTransport({
      address: ctx.server.url,
      service: { name: 'go.micro.srv.lone', version: '2.1.0-rc.1', endpoints: ['Lone.Run'] },
    });
    try {
      const listener = await withTimeout(
        lone.listen(async (_r, reply) => reply(serverResponse('{}'))),
        5000,
        'listen',
      );
      const [found] = await all<ServiceIdentity>(ctx.client.ping('go_micro_srv_lone'));
      assert.is(found?.id, idOf(listener));
      assert.is(found?.version, '2.1.0-rc.1');
      assert.is(found?.metadata?.['micro-service'], 'go.micro.srv.lone');
      await withTimeout(listener.close(), 5000, 'close');
      const everyone = await all<ServiceIdentity>(ctx.client.ping());
      assert.not.ok(
        everyone.some((s) => s.id === idOf(listener)),
        'not among all services',
      );
      assert.ok(everyone.length >= 2, 'the others still answer');
      // Nobody answers to that name any more: the services client reports no responders.
      const gone = await rejects(() => all<ServiceIdentity>(ctx.client.ping('go_micro_srv_lone')));
      assert.is((gone as { code?: string }).code, '503');
    } finally {
      await withTimeout(lone.close(), 5000, 'closing the lone transport');
    }
  });

  services(
    'a one-shot function on NATS serves one request, refuses a concurrent one with a retryable 503, then leaves',
    async (ctx) => {
      const definition = {
        name: 'once',
        version: '1.0.0',
        handlers: { Echo: { Say: async () => (await sleep(50), 'done') } },
      };
      // No service option: core's Service tells listen() its name, version and endpoints.
      const transport = createNatsTransport({ address: ctx.server.url });
      const fn = createFunction(definition, { registry: createMemoryRegistry(), transport, logger: quiet });
      try {
        await withTimeout(fn.start(), 5000, 'start');
        const [listed] = await all<ServiceInfo>(ctx.client.info('once'));
        assert.is(listed?.id, fn.service.address!.split('/').pop(), 'the waiting function is a NATS service');
        assert.equal(
          listed?.endpoints.map((e) => e.subject),
          ['micro.once.Echo.Say', `micro.once.${listed?.id}.>`],
        );
        const node = { id: fn.service.id, address: fn.service.address!, metadata: {} };
        const replies = await withTimeout(
          Promise.all([0, 1].map(() => transport.call(node, transportRequest('Echo.Say')))),
          5000,
          'two calls',
        );
        const ok = replies.filter((r) => !r.error);
        const refused = replies.filter((r) => r.error);
        assert.is(ok.length, 1);
        assert.is(refused[0]?.error?.code, 503);
        assert.ok(refused[0]?.error?.retryable, 'the caller may try another instance');
        assert.is((await withTimeout(fn.done, 5000, 'the function to end')).kind, 'request');
        await rejects(() => all<ServiceIdentity>(ctx.client.ping('once')), 'nobody answers to "once" any more');
      } finally {
        await withTimeout(fn.stop(), 5000, 'stopping the function');
        await withTimeout(transport.close(), 5000, 'closing its transport');
      }
    },
  );

  services.run();
}
