// examples/counter as a Lambda function on the NATS store: deployed with MICRO_STORE=nats (so its bundle carries the
// NATS client) to the local Lambda API, run under the official runtime interface client, called concurrently.
import * as assert from 'uvu/assert';
import { natsAvailable } from '../../nats-server.js';
import { withTimeout } from '../../helpers.js';
import { lambdaOnNats, ricAvailable } from './helpers.js';

if (natsAvailable() && ricAvailable()) {
  // ---
  const store = lambdaOnNats('examples/counter as a Lambda function on the NATS store');

  store(
    '10 concurrent invocations, in environments of their own, end at exactly 10 by compare-and-set',
    async ({ server, deploy }) => {
      const counter = await deploy('examples/counter', {
        MICRO_REGISTRY: 'memory',
        MICRO_STORE: 'nats',
        MICRO_STORE_ADDRESS: server.url,
      });
      const replies = await withTimeout(
        Promise.all(
          Array.from({ length: 10 }, () =>
            counter.call<{ value: number; conflicts: number }>('counter', 'Counter.Increment', {}),
          ),
        ),
        120_000,
        '10 invocations',
      );
      const conflicts = replies.reduce((n, r) => n + r.conflicts, 0);
      assert.equal(
        replies.map((r) => r.value).sort((a, b) => a - b),
        Array.from({ length: 10 }, (_, i) => i + 1),
        `values 1..10 (${conflicts} conflicts retried)`,
      );
    },
  );

  store.run();
}
