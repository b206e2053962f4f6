// examples/config as a Lambda function (the official runtime interface client, the local Lambda API): its config.json
// and its Lambda environment are read, and with MICRO_CONFIG=nats the keys set in the bucket win over both.
import * as assert from 'uvu/assert';
import { readConfig } from '../../../runtime/core/config.js';
import { natsConfig } from '../../../runtime/plugins/nats/plugin.js';
import { writeKv } from '../../contracts/config.js';
import { natsAvailable } from '../../nats-server.js';
import { withTimeout } from '../../helpers.js';
import { lambdaOnNats, ricAvailable } from './helpers.js';

if (natsAvailable() && ricAvailable()) {
  // ---
  // One environment: the second invocation must find the first's environment ready for it, its NATS connection
  // (the host's plugins) still open. Its handler streams (examples/config has a watch stream), and a streamed
  // response's runtime context waited for an empty event loop, so that environment never took another event.
  const config = lambdaOnNats('examples/config as a Lambda function', { maxEnvironments: 1 });

  config(
    'reads config.json and its environment, then what was set in the NATS bucket (2 invocations, one environment)',
    async ({ server, deploy }) => {
      const env = { MICRO_REGISTRY: 'memory', MICRO_CONFIG: 'nats', MICRO_CONFIG_ADDRESS: server.url, shout: 'true' };
      const settings = await deploy('examples/config', env);
      const hello = async () =>
        (
          await withTimeout(
            settings.call<{ message: string }>('config', 'Settings.Hello', { name: 'Ada' }),
            60_000,
            'Settings.Hello',
          )
        ).message;
      assert.is(await hello(), 'HELLO ADA', "config.json's greeting, the environment's shout");
      const writer = await natsConfig.create({ env, config: readConfig(env), platform: 'node', broker: {} });
      try {
        await writeKv(writer, 'config', { greeting: 'Hi', shout: 'no' });
      } finally {
        await writer.close?.();
      }
      assert.is(await hello(), 'Hi Ada', 'the set keys win over both');
    },
  );

  config.run();
}
