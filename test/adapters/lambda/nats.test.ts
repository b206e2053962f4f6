// A Lambda-hosted function publishing to a real NATS: deployed with MICRO_BROKER=nats (so its bundle carries the
// NATS client) to the local Lambda API, called through the Lambda transport, its message read from nats-server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deployLambda } from '../../../adapters/lambda/deploy.js';
import { Metadata, type BrokerMessage } from '../../../runtime/core/index.js';
import { LAMBDA_ENDPOINT_METADATA } from '../../../runtime/plugins/lambda/address.js';
import { createLambdaTransport } from '../../../runtime/plugins/lambda/transport.js';
import { createNatsBroker } from '../../../runtime/plugins/nats/broker.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../nats-server.js';
import { eventually, withTimeout } from '../../helpers.js';
import { ricAvailable, root, startEndpoint, type TestEndpoint } from './helpers.js';

if (natsAvailable() && ricAvailable()) {
  // ---
  const nats = suite('a Lambda function on NATS');
  let server: NatsServer;
  let api: TestEndpoint;
  let scratch: string;
  const transport = createLambdaTransport({ env: {} });
  nats.before(async () => {
    [server, api] = await Promise.all([startNatsServer(), startEndpoint()]);
    scratch = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-nats-'));
  });
  nats.after(async () => {
    await transport.close();
    await api?.close();
    await server?.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  nats('publishes to the NATS broker its environment names, with the NATS client in its bundle', async () => {
    const env = { MICRO_REGISTRY: 'memory', MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: server.url };
    const deployed = await withTimeout(
      deployLambda({
        entry: join(root, 'test/fixtures/lambda-events'),
        outdir: join(scratch, 'out'),
        env,
        endpoint: api.url,
        hostEnv: { MICRO_FN_HOME: scratch },
      }),
      60_000,
      'deploy',
    );
    assert.ok(deployed.zip.size > 100_000, `the NATS client is bundled (${deployed.zip.size} bytes zipped)`);
    const broker = createNatsBroker({ address: server.url });
    try {
      const received: BrokerMessage[] = [];
      await broker.subscribe('orders.placed', ({ message }) => void received.push(message));
      const node = { id: 'n', address: deployed.address, metadata: { [LAMBDA_ENDPOINT_METADATA]: api.url } };
      const request = {
        id: 'r1',
        service: 'lambda-events',
        endpoint: 'Orders.Place',
        contentType: 'application/json',
        body: new TextEncoder().encode('{"id":7,"ok":true}'),
        metadata: new Metadata(),
      };
      const response = await withTimeout(transport.call(node, request), 20_000, 'call');
      assert.is(response.error, undefined, JSON.stringify(response.error));
      assert.equal(JSON.parse(new TextDecoder().decode(response.body)), { published: 7 });
      await eventually(() => received.length === 1, 10_000, 'the message on NATS');
      assert.equal(JSON.parse(new TextDecoder().decode(received[0]!.body)), { id: 7, ok: true });
      assert.is(received[0]!.headers['micro-from-service'], 'lambda-events');
    } finally {
      await broker.close();
    }
  });

  nats.run();
}
