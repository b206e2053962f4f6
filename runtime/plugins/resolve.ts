/**
 * Plugins by name, as `MICRO_REGISTRY` / `MICRO_BROKER` and the CLI flags give them. Each plugin is imported
 * only when it is chosen, so a process that uses the memory plugins never loads the NATS client.
 */
import { ConfigError, type Broker, type Env, type Registry, type Transport } from '../core/index.js';
import { readConfig } from '../core/config.js';

export const REGISTRIES = ['memory'] as const;
export const BROKERS = ['memory'] as const;

/** The registry and broker of the embedded default. */
export const DEFAULT_REGISTRY = 'memory';
export const DEFAULT_BROKER = 'memory';

export interface Plugins {
  registry: Registry;
  broker: Broker;
  /** Every client transport this host can use, by scheme. */
  transports: Transport[];
  /** Closes what was opened here. */
  close(): Promise<void>;
}

/** The registry named by `MICRO_REGISTRY` (default memory). */
export async function resolveRegistry(env: Env): Promise<Registry> {
  const name = readConfig(env).registry ?? DEFAULT_REGISTRY;
  switch (name) {
    case 'memory':
      return (await import('./memory/registry.js')).createMemoryRegistry();
    default:
      throw new ConfigError(`MICRO_REGISTRY must be one of ${REGISTRIES.join(', ')}; got "${name}"`);
  }
}

/** The broker named by `MICRO_BROKER` (default memory). */
export async function resolveBroker(env: Env): Promise<Broker> {
  const name = readConfig(env).broker ?? DEFAULT_BROKER;
  switch (name) {
    case 'memory':
      return (await import('./memory/broker.js')).createMemoryBroker();
    default:
      throw new ConfigError(`MICRO_BROKER must be one of ${BROKERS.join(', ')}; got "${name}"`);
  }
}

/** Registry, broker and the HTTP transport, as the environment configures them. */
export async function resolvePlugins(env: Env): Promise<Plugins> {
  const [registry, broker, { createHttpTransport }] = await Promise.all([resolveRegistry(env), resolveBroker(env), import('./http/index.js')]);
  const http = createHttpTransport();
  return {
    registry,
    broker,
    transports: [http],
    async close() {
      await Promise.allSettled([registry.close?.(), broker.close?.(), http.close?.()]);
    },
  };
}
