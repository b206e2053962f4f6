/**
 * A one-shot `micro-fn run` on NATS opens one connection, whatever number of NATS plugins it uses: its listener,
 * registry, JetStream broker, store and sync share it (runtime/plugins/nats/connections.ts). The server's own
 * monitoring (`/connz?state=all`) counts every connection it ever saw.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Metadata } from '../../runtime/core/index.js';
import { createNatsTransport, type NatsTransport } from '../../runtime/plugins/nats/transport.js';
import { withTimeout } from '../helpers.js';
import { natsAvailable, serverConnections, startNatsServer, type NatsServer } from '../nats-server.js';
import { start, tempHome, type Running } from './helpers.js';

interface Context {
  nats: NatsServer;
  home: ReturnType<typeof tempHome>;
  caller: NatsTransport;
  runs: Running[];
}

const test = suite<Context>('micro-fn run on NATS: connections', {} as Context);

if (natsAvailable()) {
  test.before(async (ctx) => {
    ctx.nats = await withTimeout(startNatsServer({ monitor: true }), 10_000, 'nats-server');
    ctx.home = tempHome();
    ctx.caller = createNatsTransport({ address: ctx.nats.url, name: 'test caller' });
    ctx.runs = [];
  });
  test.after(async (ctx) => {
    for (const r of ctx.runs ?? []) r.kill();
    await withTimeout(ctx.caller?.close() ?? Promise.resolve(), 5000, 'closing the caller');
    await withTimeout(ctx.nats?.cleanup() ?? Promise.resolve(), 10_000, 'stopping nats-server');
    ctx.home?.cleanup();
  });

  test('examples/lock (listener, registry, JetStream broker, store, sync on NATS) opens 1 connection, not 4', async (ctx) => {
    const url = ctx.nats.url;
    const env = {
      MICRO_FN_HOME: ctx.home.home,
      MICRO_REGISTRY: 'nats',
      MICRO_REGISTRY_ADDRESS: url,
      MICRO_BROKER: 'jetstream',
      MICRO_BROKER_ADDRESS: url,
      MICRO_STORE: 'nats',
      MICRO_SYNC: 'nats',
    };
    const run = start(['run', 'examples/lock', '--transport', 'nats'], env);
    ctx.runs.push(run);
    const [, address] = await run.waitFor(/listening on (nats:\/\/\S+)/);
    const node = { id: address!.split('/').pop()!, address: address!, metadata: {} };
    const response = await withTimeout(
      ctx.caller.call(node, {
        id: crypto.randomUUID(),
        service: 'lock',
        endpoint: 'Ledger.Add',
        contentType: 'application/json',
        body: new TextEncoder().encode('{}'),
        metadata: new Metadata(),
      }),
      30_000,
      'Ledger.Add',
    );
    assert.is(response.error, undefined, JSON.stringify(response.error));
    assert.is((JSON.parse(new TextDecoder().decode(response.body)) as { value: number }).value, 1);
    assert.is(await run.exited(15_000), 0, 'exits 0 after its one invocation');
    const theirs = (await serverConnections(ctx.nats, 'all')).filter((name) => name !== 'test caller');
    assert.is(theirs.length, 1, `connections of the function process: ${theirs.join(', ')}`);
  });

  test.run();
}
