// A Lambda-hosted function publishing to a real NATS: deployed with MICRO_BROKER=nats (so its bundle carries the
// NATS client) to the local Lambda API, called through the Lambda transport, its message read from nats-server.
import * as assert from 'uvu/assert';
import type { BrokerMessage } from '../../../runtime/core/index.js';
import { createNatsBroker } from '../../../runtime/plugins/nats/broker.js';
import { natsAvailable } from '../../nats-server.js';
import { eventually, withTimeout } from '../../helpers.js';
import { lambdaOnNats, ricAvailable } from './helpers.js';

if (natsAvailable() && ricAvailable()) {
  // ---
  const nats = lambdaOnNats('a Lambda function on NATS');

  nats(
    'publishes to the NATS broker its environment names, with the NATS client in its bundle',
    async ({ server, deploy }) => {
      const events = await deploy('test/fixtures/lambda-events', {
        MICRO_REGISTRY: 'memory',
        MICRO_BROKER: 'nats',
        MICRO_BROKER_ADDRESS: server.url,
      });
      assert.ok(events.zipSize > 100_000, `the NATS client is bundled (${events.zipSize} bytes zipped)`);
      const broker = createNatsBroker({ address: server.url });
      try {
        const received: BrokerMessage[] = [];
        await broker.subscribe('orders.placed', ({ message }) => void received.push(message));
        const reply = await withTimeout(
          events.call('lambda-events', 'Orders.Place', { id: 7, ok: true }),
          20_000,
          'call',
        );
        assert.equal(reply, { published: 7 });
        await eventually(() => received.length === 1, 10_000, 'the message on NATS');
        assert.equal(JSON.parse(new TextDecoder().decode(received[0]!.body)), { id: 7, ok: true });
        assert.is(received[0]!.headers['micro-from-service'], 'lambda-events');
      } finally {
        await broker.close();
      }
    },
  );

  nats.run();
}
