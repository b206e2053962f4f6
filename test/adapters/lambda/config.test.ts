// examples/config as a Lambda function (the official runtime interface client, the local Lambda API): its config.json
// and its Lambda environment are read, and with MICRO_CONFIG=nats the keys set in the bucket win over both.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deployLambda } from '../../../adapters/lambda/deploy.js';
import { Metadata } from '../../../runtime/core/index.js';
import { readConfig } from '../../../runtime/core/config.js';
import { LAMBDA_ENDPOINT_METADATA } from '../../../runtime/plugins/lambda/address.js';
import { createLambdaTransport } from '../../../runtime/plugins/lambda/transport.js';
import { natsConfig } from '../../../runtime/plugins/nats/plugin.js';
import { writeKv } from '../../contracts/config.js';
import { natsAvailable, startNatsServer, type NatsServer } from '../../nats-server.js';
import { withTimeout } from '../../helpers.js';
import { ricAvailable, root, startEndpoint, type TestEndpoint } from './helpers.js';

if (natsAvailable() && ricAvailable()) {
  // ---
  const config = suite('examples/config as a Lambda function');
  let server: NatsServer;
  let api: TestEndpoint;
  let scratch: string;
  const transport = createLambdaTransport({ env: {} });
  config.before(async () => {
    [server, api] = await Promise.all([startNatsServer(), startEndpoint()]);
    scratch = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-config-'));
  });
  config.after(async () => {
    await transport.close();
    await api?.close();
    await server?.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  config('reads config.json and its environment, then what was set in the NATS bucket (2 invocations)', async () => {
    const env = { MICRO_REGISTRY: 'memory', MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: server.url, shout: 'true' };
    const deployed = await withTimeout(
      deployLambda({
        entry: join(root, 'examples/config'),
        outdir: join(scratch, 'out'),
        env,
        endpoint: api.url,
        hostEnv: { MICRO_FN_HOME: scratch },
      }),
      60_000,
      'deploy',
    );
    const node = { id: 'n', address: deployed.address, metadata: { [LAMBDA_ENDPOINT_METADATA]: api.url } };
    const hello = async () => {
      const response = await withTimeout(
        transport.call(node, {
          id: crypto.randomUUID(),
          service: 'config',
          endpoint: 'Settings.Hello',
          contentType: 'application/json',
          body: new TextEncoder().encode('{"name":"Ada"}'),
          metadata: new Metadata(),
        }),
        60_000,
        'Settings.Hello',
      );
      assert.is(response.error, undefined, JSON.stringify(response.error));
      return (JSON.parse(new TextDecoder().decode(response.body)) as { message: string }).message;
    };
    assert.is(await hello(), 'HELLO ADA', "config.json's greeting, the environment's shout");
    const writer = await natsConfig.create({ env, config: readConfig(env), platform: 'node', broker: {} });
    try {
      await writeKv(writer, 'config', { greeting: 'Hi', shout: 'no' });
    } finally {
      await writer.close?.();
    }
    assert.is(await hello(), 'Hi Ada', 'the set keys win over both');
  });

  config.run();
}
