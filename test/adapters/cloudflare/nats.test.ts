/** NATS inside a Worker: the handler publishes over WebSocket to a real nats-server; a Node subscriber receives it. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Miniflare } from 'miniflare';
import { pathToFileURL } from 'node:url';
import { connect, type NatsConnection } from 'nats';
import { buildLocal } from '../../../adapters/local/build.js';
import { workerRecord } from '../../../adapters/cloudflare/deploy.js';
import { createClient, type ServiceDefinition } from '../../../runtime/core/index.js';
import { createHttpTransport } from '../../../runtime/plugins/http/index.js';
import { createNatsRegistry } from '../../../runtime/plugins/nats/registry.js';
import { eventually, withTimeout } from '../../helpers.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../nats-server.js';
import { NATS_VARS, buildWorker, fixture, startWorker, tempDir } from './worker.js';

interface Context {
  server: NatsServer;
  subscriber: NatsConnection;
  mf: Miniflare;
  remove: () => void;
}

if (natsAvailable()) {
  const natsSuite = suite<Context>('createWorker: NATS over WebSocket', {
    server: undefined as never,
    subscriber: undefined as never,
    mf: undefined as never,
    remove: () => {},
  });

  natsSuite.before(async (ctx) => {
    const { dir, remove } = tempDir();
    ctx.remove = remove;
    ctx.server = await withTimeout(startNatsServer({ websocket: true }), 15_000, 'starting nats-server');
    ctx.subscriber = await withTimeout(connect({ servers: ctx.server.url }), 5000, 'the subscriber connecting');
    const built = await buildWorker(fixture('cloudflare'), dir, NATS_VARS);
    ctx.mf = startWorker(built, dir, { MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: ctx.server.websocket! });
    await withTimeout(ctx.mf.ready, 30_000, 'workerd start');
  });

  natsSuite.after(async (ctx) => {
    await ctx.mf?.dispose();
    await ctx.subscriber?.close();
    await ctx.server?.cleanup();
    ctx.remove();
  });

  natsSuite(
    'a handler publishes through the NATS broker over WebSocket and a Node subscriber receives it',
    async (ctx) => {
      const received: unknown[] = [];
      ctx.subscriber.subscribe('greetings', {
        callback: (err, msg) => void (err ? undefined : received.push(msg.json())),
      });
      await ctx.subscriber.flush();
      for (const name of ['Ada', 'Bo']) {
        const res = await withTimeout(
          ctx.mf.dispatchFetch('http://worker.test/cfdemo/Greeter.Announce', {
            method: 'POST',
            body: JSON.stringify({ name }),
            headers: { 'content-type': 'application/json' },
          }),
          15_000,
          'the publishing invocation',
        );
        assert.is(res.status, 200, await res.clone().text());
        assert.equal(await res.json(), { published: true });
      }
      // Each invocation opened its own connection and drained it before its event ended: both arrive.
      await eventually(() => received.length === 2, 5000, 'both messages');
      assert.equal(received, [{ name: 'Ada' }, { name: 'Bo' }]);
    },
  );

  natsSuite(
    'a Node client calls the Worker through the NATS registry, at the node address a deploy registers',
    async (ctx) => {
      // The definition as the CLI reads it: from a local build of the same entry.
      const { dir, remove } = tempDir();
      const registry = createNatsRegistry({ address: ctx.server.url, bucket: `cf_test_${process.pid}` });
      const http = createHttpTransport();
      try {
        const local = await buildLocal(fixture('cloudflare'), { outdir: dir });
        const { definition } = (await import(pathToFileURL(local.file).href)) as { definition: ServiceDefinition };
        const url = (await ctx.mf.ready).href;
        await registry.register(workerRecord(definition, url), { ttl: 0 });
        const client = createClient({ registry, transports: [http] });
        const reply = await withTimeout(
          client.request('cfdemo', 'Greeter.Hello', { name: 'Ada' }, { metadata: { 'x-question': 'there' } }),
          15_000,
          'the call',
        );
        assert.equal(reply.body, { message: 'Hello Ada' });
        assert.is(reply.metadata.get('x-answer'), 'there: yes');
        const [service] = await registry.getService('cfdemo');
        assert.equal(service!.nodes, [{ id: 'cfdemo-cloudflare', address: url, metadata: { target: 'cloudflare' } }]);
        assert.ok(service!.endpoints.some((e) => e.name === 'jobs.run' && e.metadata.subscriber === 'true'));
      } finally {
        await registry.close();
        await http.close();
        remove();
      }
    },
  );

  natsSuite.run();
}
