// examples/counter as a Lambda function on the NATS store: deployed with MICRO_STORE=nats (so its bundle carries the
// NATS client) to the local Lambda API, run under the official runtime interface client, called concurrently.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deployLambda } from '../../../adapters/lambda/deploy.js';
import { Metadata } from '../../../runtime/core/index.js';
import { LAMBDA_ENDPOINT_METADATA } from '../../../runtime/plugins/lambda/address.js';
import { createLambdaTransport } from '../../../runtime/plugins/lambda/transport.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../nats-server.js';
import { withTimeout } from '../../helpers.js';
import { ricAvailable, root, startEndpoint, type TestEndpoint } from './helpers.js';

if (natsAvailable() && ricAvailable()) {
  // ---
  const store = suite('examples/counter as a Lambda function on the NATS store');
  let server: NatsServer;
  let api: TestEndpoint;
  let scratch: string;
  const transport = createLambdaTransport({ env: {} });
  store.before(async () => {
    [server, api] = await Promise.all([startNatsServer(), startEndpoint()]);
    scratch = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-store-'));
  });
  store.after(async () => {
    await transport.close();
    await api?.close();
    await server?.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  store('10 concurrent invocations, in environments of their own, end at exactly 10 by compare-and-set', async () => {
    const env = { MICRO_REGISTRY: 'memory', MICRO_STORE: 'nats', MICRO_STORE_ADDRESS: server.url };
    const deployed = await withTimeout(
      deployLambda({
        entry: join(root, 'examples/counter'),
        outdir: join(scratch, 'out'),
        env,
        endpoint: api.url,
        hostEnv: { MICRO_FN_HOME: scratch },
      }),
      60_000,
      'deploy',
    );
    const node = { id: 'n', address: deployed.address, metadata: { [LAMBDA_ENDPOINT_METADATA]: api.url } };
    const increment = async (i: number) => {
      const response = await transport.call(node, {
        id: `r${i}`,
        service: 'counter',
        endpoint: 'Counter.Increment',
        contentType: 'application/json',
        body: new TextEncoder().encode('{}'),
        metadata: new Metadata(),
      });
      assert.is(response.error, undefined, JSON.stringify(response.error));
      return JSON.parse(new TextDecoder().decode(response.body)) as { value: number; conflicts: number };
    };
    const replies = await withTimeout(
      Promise.all(Array.from({ length: 10 }, (_, i) => increment(i))),
      120_000,
      '10 invocations',
    );
    const conflicts = replies.reduce((n, r) => n + r.conflicts, 0);
    assert.equal(
      replies.map((r) => r.value).sort((a, b) => a - b),
      Array.from({ length: 10 }, (_, i) => i + 1),
      `values 1..10 (${conflicts} conflicts retried)`,
    );
  });

  store.run();
}
