/** The registry, broker and client a command works with, from the environment and the plugin flags. */
import { Client } from '../runtime/core/client.js';
import {
  callControl,
  runtimeAddress,
  type ControlApi,
  type ControlEndpoint,
} from '../runtime/plugins/local/protocol.js';
import { resolvePlugins, type NodePlugins } from '../runtime/plugins/resolve.js';
import { envWithFlags, type OptionSpec } from './command.js';

export interface Session {
  env: Record<string, string | undefined>;
  plugins: NodePlugins;
  client: Client;
}

/** Opens the plugins, runs `fn`, and closes them whatever happens. */
export async function withSession<T>(
  values: Readonly<Record<string, unknown>>,
  fn: (session: Session) => Promise<T>,
): Promise<T> {
  const env = envWithFlags(values);
  const plugins = await resolvePlugins(env);
  const client = new Client({ registry: plugins.registry, broker: plugins.broker, transports: plugins.transports });
  try {
    return await fn({ env, plugins, client });
  } finally {
    await plugins.close();
  }
}

/** Flag of the commands that talk to `micro-fn serve`. */
export const runtimeOption = {
  runtime: {
    type: 'string',
    value: 'URL',
    description: 'the micro-fn serve to talk to, when the registry holds several',
  },
} as const satisfies Record<string, OptionSpec>;

/** Calls the control service of the `micro-fn serve` found in the registry (or at `runtime`). */
export async function callRuntime<E extends ControlEndpoint>(
  session: Session,
  endpoint: E,
  request: ControlApi[E]['request'],
  options: { runtime?: string; timeout?: number } = {},
): Promise<ControlApi[E]['response']> {
  const address = await runtimeAddress(session.plugins.registry, options.runtime);
  return callControl(session.client, endpoint, request, { timeout: options.timeout, address });
}
