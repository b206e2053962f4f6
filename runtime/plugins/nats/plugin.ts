/**
 * The NATS plugin's descriptors: a registry on a JetStream KV bucket, brokers on NATS core (at-most-once) and
 * JetStream (at-least-once), and request/reply calls to `nats://` nodes. On Node they connect over TCP with the
 * `nats` package; on a Web platform the same code runs on `nats.ws`, over the platform's WebSocket, so the
 * addresses there are `ws://` or `wss://` (nats-server's websocket listener).
 */
import { ConfigError, type RuntimeConfig } from '../../core/config.js';
import type {
  BrokerPlugin,
  ConfigPlugin,
  Platform,
  PluginContext,
  RegistryPlugin,
  StorePlugin,
  SyncPlugin,
  TransportPlugin,
} from '../../core/plugin.js';

import type { NatsConnections } from './connections.js';

const platforms: readonly Platform[] = ['node', 'web'];
const packages = { nats: { web: 'nats.ws' } } as const;
const DEFAULT_ADDRESS = 'nats://127.0.0.1:4222';

/** Whether a configuration uses NATS at all (then calls to `nats://` nodes are possible). */
function usesNats(c: RuntimeConfig): boolean {
  return c.registry === 'nats' || c.broker === 'nats' || c.broker === 'jetstream' || c.transport === 'nats';
}

/**
 * The server of a plugin: its own address, else the other plugin's when that is a NATS one, else (Node only) the
 * NATS default. A Web platform reaches NATS over WebSocket only, so there an address is required and must be one.
 */
function address(
  { platform }: PluginContext,
  variable: string,
  own: string | undefined,
  other: string | undefined,
): string {
  if (platform === 'web') {
    const chosen = own ?? other;
    const parts =
      chosen
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean) ?? [];
    if (parts.length === 0 || !parts.every((p) => /^wss?:\/\//i.test(p))) {
      throw new ConfigError(
        `on ${platform} platforms (Workers, Deno) NATS is reached over WebSocket only: set ${variable} to ws://host:port or wss://host:port (nats-server's websocket listener)${chosen ? `; got "${chosen}"` : ''}`,
      );
    }
    return chosen!;
  }
  return own ?? (other?.startsWith('nats://') ? other : undefined) ?? DEFAULT_ADDRESS;
}

const POOL = Symbol('nats connections');

/** The set's pool: its NATS plugins share one connection per server (connections.ts). */
async function connections({ resources }: PluginContext): Promise<NatsConnections | undefined> {
  if (!resources) return undefined;
  let pool = resources.get(POOL) as NatsConnections | undefined;
  if (!pool) resources.set(POOL, (pool = new (await import('./connections.js')).NatsConnections()));
  return pool;
}

const registryAddress = (c: PluginContext) =>
  address(c, 'MICRO_REGISTRY_ADDRESS', c.config.registryAddress, c.config.brokerAddress);
const brokerAddress = (c: PluginContext) =>
  address(c, 'MICRO_BROKER_ADDRESS', c.config.brokerAddress, c.config.registryAddress);
const storeAddress = (c: PluginContext) =>
  address(c, 'MICRO_STORE_ADDRESS', c.config.storeAddress, c.config.registryAddress ?? c.config.brokerAddress);
const configAddress = (c: PluginContext) =>
  address(c, 'MICRO_CONFIG_ADDRESS', c.config.configAddress, c.config.registryAddress ?? c.config.brokerAddress);
const syncAddress = (c: PluginContext) =>
  address(c, 'MICRO_SYNC_ADDRESS', c.config.syncAddress, c.config.registryAddress ?? c.config.brokerAddress);

export const natsRegistry: RegistryPlugin = {
  kind: 'registry',
  name: 'nats',
  summary: 'a JetStream KV bucket (micro_fn_registry): every host sees every function',
  platforms,
  packages,
  check: (c) => void registryAddress(c),
  create: async (c) =>
    (await import('./registry.js')).createNatsRegistry({
      address: registryAddress(c),
      connections: await connections(c),
    }),
};

export const natsBroker: BrokerPlugin = {
  kind: 'broker',
  name: 'nats',
  summary: 'NATS core: at-most-once, nothing stored',
  shared: true,
  platforms,
  packages,
  check: (c) => void brokerAddress(c),
  create: async (c) =>
    (await import('./broker.js')).createNatsBroker({ address: brokerAddress(c), connections: await connections(c) }),
};

export const jetStreamBroker: BrokerPlugin = {
  kind: 'broker',
  name: 'jetstream',
  summary: 'JetStream: at-least-once across crashes, a stream per topic, durable queue groups',
  shared: true,
  platforms,
  packages,
  check: (c) => void brokerAddress(c),
  create: async (c) =>
    (await import('./jetstream.js')).createJetStreamBroker({
      address: brokerAddress(c),
      connections: await connections(c),
      ...c.broker,
    }),
};

export const natsTransport: TransportPlugin = {
  kind: 'transport',
  name: 'nats',
  summary: 'request/reply over NATS; listeners are NATS services ($SRV.PING, INFO, STATS)',
  schemes: ['nats'],
  platforms,
  packages,
  enabled: usesNats,
  async create(c) {
    // Calls go to the configured server when there is one: on Node the server in a node address may be used
    // instead, but a Web platform cannot reach a nats:// address at all.
    const configured = [c.config.registryAddress, c.config.brokerAddress].find(
      (a) => a !== undefined && (c.platform === 'web' ? /^wss?:\/\//i.test(a) : a.startsWith('nats://')),
    );
    if (c.platform === 'web' && configured === undefined) registryAddress(c); // throws the ConfigError that says what to set
    return (await import('./transport.js')).createNatsTransport({
      address: configured,
      connections: await connections(c),
    });
  },
};

export const natsStore: StorePlugin = {
  kind: 'store',
  name: 'nats',
  summary:
    'a JetStream KV bucket (micro_fn_store) every host shares: strongly consistent, atomic compare-and-set, TTLs',
  platforms,
  packages,
  check: (c) => void storeAddress(c),
  create: async (c) =>
    (await import('./store.js')).createNatsStore({ address: storeAddress(c), connections: await connections(c) }),
};

export const natsSync: SyncPlugin = {
  kind: 'sync',
  name: 'nats',
  summary: 'locks on a JetStream KV bucket (micro_fn_sync), expiry judged by the server clock: every host shares them',
  platforms,
  packages,
  check: (c) => void syncAddress(c),
  create: async (c) =>
    (await import('./sync.js')).createNatsSync({ address: syncAddress(c), connections: await connections(c) }),
};

export const natsConfig: ConfigPlugin = {
  kind: 'config',
  name: 'nats',
  summary: 'the keys of ctx.config in a JetStream KV bucket (micro_fn_config) every host shares',
  platforms,
  packages,
  check: (c) => void configAddress(c),
  create: async (c) =>
    (await import('./store.js')).createNatsStore({
      address: configAddress(c),
      bucket: 'micro_fn_config',
      connections: await connections(c),
    }),
};
