/** The registry, broker and client a command works with, from the environment and the plugin flags. */
import { Client } from '../runtime/core/client.js';
import { UserError } from '../runtime/core/errors.js';
import { RUNTIME_SERVICE, callControl, type ControlApi, type ControlEndpoint } from '../runtime/plugins/local/protocol.js';
import { resolvePlugins, type Plugins } from '../runtime/plugins/resolve.js';
import { envWithFlags, type OptionSpec, type Parsed } from './command.js';

export interface Session {
  env: Record<string, string | undefined>;
  plugins: Plugins;
  client: Client;
}

/** Opens the plugins, runs `fn`, and closes them whatever happens. */
export async function withSession<T>(values: Parsed['values'], fn: (session: Session) => Promise<T>): Promise<T> {
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
export const runtimeOption: Record<string, OptionSpec> = {
  runtime: { type: 'string', value: 'URL', description: 'the micro-fn serve to talk to, when the registry holds several' },
};

/**
 * Calls the control service of the `micro-fn serve` found in the registry (or at `runtime`). With none, or
 * several and no choice made, says so in one line.
 */
export async function callRuntime<E extends ControlEndpoint>(
  session: Session,
  endpoint: E,
  request: ControlApi[E]['request'],
  options: { runtime?: string; timeout?: number } = {},
): Promise<ControlApi[E]['response']> {
  let address = options.runtime;
  if (!address) {
    const nodes = (await session.plugins.registry.getService(RUNTIME_SERVICE)).flatMap((s) => s.nodes);
    if (nodes.length === 0) throw new UserError('no `micro-fn serve` is running for this registry (MICRO_FN_HOME, MICRO_REGISTRY): start one with `micro-fn serve`');
    if (nodes.length > 1) {
      throw new UserError(`${nodes.length} micro-fn serve runtimes are registered (${nodes.map((n) => n.address).join(', ')}): choose one with --runtime URL`);
    }
    address = nodes[0]!.address;
  }
  return callControl(session.client, endpoint, request, { timeout: options.timeout, address });
}
