/**
 * The cloudflare-kv plugin's descriptor: a store on a Workers KV namespace bound to the Worker. Eventually consistent,
 * no compare-and-set (see store.ts): for caches and values one writer owns, never for counters or locks.
 */
import { MicroError } from '../../core/errors.js';
import { STORE_ERROR } from '../../core/store.js';
import type { StorePlugin } from '../../core/plugin.js';

/** The binding used when MICRO_STORE_ADDRESS names none (store.ts exports it as DEFAULT_KV_BINDING). */
const DEFAULT_KV_BINDING = 'MICRO_FN_STORE';

export const cloudflareKvStore: StorePlugin = {
  kind: 'store',
  name: 'cloudflare-kv',
  summary: `a Workers KV binding (MICRO_STORE_ADDRESS, default ${DEFAULT_KV_BINDING}): eventually consistent, no compare-and-set`,
  platforms: ['web'],
  async create({ env, config }) {
    const binding = config.storeAddress ?? DEFAULT_KV_BINDING;
    const { createCloudflareKvStore, isKvNamespace } = await import('./store.js');
    // Platform seam: a Worker's bindings reach the configuration as they are; a KV namespace is an object.
    const namespace: unknown = (env as Readonly<Record<string, unknown>>)[binding];
    // A MicroError, not a ConfigError: it is raised by a handler's first store operation, and its caller (and the
    // Worker's log) should read what to fix, as with the 501 of a host without a store (core/client.ts).
    if (!isKvNamespace(namespace))
      throw new MicroError(
        STORE_ERROR,
        501,
        `MICRO_STORE=cloudflare-kv needs a Workers KV namespace bound as ${binding}: add it to wrangler.toml ([[kv_namespaces]] binding = "${binding}"), or set MICRO_STORE_ADDRESS to the name of yours`,
      );
    return createCloudflareKvStore({ namespace });
  },
};
