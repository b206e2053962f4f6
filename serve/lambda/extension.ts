/**
 * The Lambda target's part of `micro-fn serve`: the local Lambda API on the gateway (under `/2015-03-31/`, its code
 * loaded with its first request, or at start when there are functions to restore), the registry entries of its
 * functions (entries.ts), and the bridge that triggers Lambda functions with subscribers from serve's broker.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Extension, Host } from '../extension.js';
import { RecordStore } from '../state.js';
import { fileName } from '../validate.js';
import { LambdaBridge } from './bridge.js';
import type { LambdaEndpoint } from './endpoint.js';
import { LambdaEntries } from './entries.js';
import { parseFunctionRecord } from './record.js';

export function lambdaExtension(host: Host): Extension {
  let endpoint: Promise<LambdaEndpoint> | undefined;
  let loaded: LambdaEndpoint | undefined;
  const bridge = new LambdaBridge({ registry: host.registry, env: host.env, trigger: host.trigger, log: host.say });
  const entries = new LambdaEntries({
    registry: host.registry,
    id: host.id,
    ttl: host.ttl,
    address: host.address,
    functions: () => loaded?.functions,
    say: host.say,
  });
  // With a state folder, functions are recorded there and their code kept beside the records; else they last as long
  // as this serve, their code in a folder of its own.
  const state = host.state && join(host.state, 'lambda');
  const store = state === undefined ? undefined : new RecordStore(state, { parse: parseFunctionRecord, say: host.say });
  const load = () =>
    (endpoint ??= import('./endpoint.js').then(
      ({ LambdaEndpoint }) =>
        (loaded = new LambdaEndpoint({
          dir: state === undefined ? join(host.home, 'lambda', host.nodeId) : join(state, 'code'),
          store,
          say: host.say,
          onDeleted: (_name, recorded) => entries.deleted(recorded),
          // Like local functions, they reach serve's registry and broker unless their configuration says otherwise.
          defaults: host.functionEnv(),
          launcher: host.launcher,
          maxEnvironments: host.concurrency,
          log: (name, requestId, line) => host.log(name, requestId, line),
          invocation: host.invocation,
          // The administrator's pair (the CLI, the AWS CLI and SDK) and the functions' invoke-only pair.
          keys: [
            { ...host.credential.aws, invokeOnly: false },
            { ...host.credential.awsInvoke, invokeOnly: true },
          ],
        })),
    ));
  const mount = (req: IncomingMessage, res: ServerResponse) =>
    void load().then(
      (api) => api.handle(req, res),
      () => res.writeHead(500).end(),
    );
  return {
    // InvokeWithResponseStream has an API version of its own.
    mounts: { '/2015-03-31/': mount, '/2021-11-15/': mount },
    async start() {
      const records = (await store?.readAll()) ?? [];
      if (records.length > 0) {
        const { functions } = await load();
        await functions.restore(records);
        // The code of a function left out this time stays while its record does, for the next start.
        await functions.sweep((name) => existsSync(join(state!, fileName(name, '.json'))));
        for (const name of functions.names()) host.say(`restored the Lambda function ${name}`);
      }
      await entries.start();
      await bridge.start();
    },
    async stop() {
      await bridge.stop();
      await entries.stop();
      await (await endpoint?.catch(() => undefined))?.close();
    },
  };
}
