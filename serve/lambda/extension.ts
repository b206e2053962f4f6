/**
 * The Lambda target's part of `micro-fn serve`: the local Lambda API on the gateway (under `/2015-03-31/`, its code
 * loaded with its first request) and the bridge that triggers Lambda functions with subscribers from serve's broker.
 */
import { join } from 'node:path';
import type { Extension, Host } from '../extension.js';
import { LambdaBridge } from './bridge.js';
import type { LambdaEndpoint } from './endpoint.js';

export function lambdaExtension(host: Host): Extension {
  let endpoint: Promise<LambdaEndpoint> | undefined;
  const bridge = new LambdaBridge({ registry: host.registry, env: host.env, trigger: host.trigger, log: host.say });
  const load = () =>
    (endpoint ??= import('./endpoint.js').then(
      ({ LambdaEndpoint }) =>
        new LambdaEndpoint({
          dir: join(host.home, 'lambda', host.nodeId),
          // Like local functions, they reach serve's registry and broker unless their configuration says otherwise.
          defaults: host.functionEnv(),
          launcher: host.launcher,
          maxEnvironments: host.concurrency,
          log: (name, requestId, line) => host.log(name, requestId, line),
          // The administrator's pair (the CLI, the AWS CLI and SDK) and the functions' invoke-only pair.
          keys: [
            { ...host.credential.aws, invokeOnly: false },
            { ...host.credential.awsInvoke, invokeOnly: true },
          ],
        }),
    ));
  return {
    mounts: {
      '/2015-03-31/': (req, res) =>
        void load().then(
          (api) => api.handle(req, res),
          () => res.writeHead(500).end(),
        ),
    },
    start: () => bridge.start(),
    async stop() {
      await bridge.stop();
      await (await endpoint?.catch(() => undefined))?.close();
    },
  };
}
