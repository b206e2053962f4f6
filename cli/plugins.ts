/** The registry, broker and client a command works with, from the environment and the plugin flags. */
import { Client } from '../runtime/core/client.js';
import { isMicroError } from '../runtime/core/errors.js';
import { UserError } from '../runtime/core/errors.js';
import { resolvePlugins, type Plugins } from '../runtime/plugins/resolve.js';
import { envWithFlags, type Parsed } from './command.js';

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

/** Calls the control service of `micro-fn serve`, with a clear line when none is running. */
export async function callRuntime<T>(client: Client, endpoint: string, request: unknown, timeout = 30_000): Promise<T> {
  try {
    return await client.call<T>('micro-fn', endpoint, request, { timeout, retries: 0 });
  } catch (err) {
    if (isMicroError(err) && err.code === 404 && /service micro-fn not found/.test(err.detail)) {
      throw new UserError('no `micro-fn serve` is running for this registry (MICRO_FN_HOME): start one with `micro-fn serve`');
    }
    throw err;
  }
}
