/**
 * Plugins by name, as `MICRO_REGISTRY` / `MICRO_BROKER` and the CLI flags give them. Each plugin is imported
 * only when it is chosen, so a process that uses the local plugins never loads the NATS client.
 */
import { ConfigError, readConfig, type Broker, type Env, type Registry, type Transport } from '../core/index.js';

export const REGISTRIES = ['local', 'memory', 'nats'] as const;
export const BROKERS = ['local', 'memory', 'nats', 'jetstream'] as const;

/** The NATS server of a plugin: its own address, else the other plugin's, else the NATS default. */
function natsAddress(own: string | undefined, other: string | undefined): string {
  return own ?? (other?.startsWith('nats://') ? other : undefined) ?? 'nats://127.0.0.1:4222';
}

/** The embedded default: files under MICRO_FN_HOME, and the broker hosted by `micro-fn serve`. */
export const DEFAULT_REGISTRY = 'local';
export const DEFAULT_BROKER = 'local';

export interface Plugins {
  registry: Registry;
  broker: Broker;
  /** Every client transport this host can use, by scheme. */
  transports: Transport[];
  /** Closes what was opened here. */
  close(): Promise<void>;
}

/** The registry named by `MICRO_REGISTRY` (default local). */
export async function resolveRegistry(env: Env): Promise<Registry> {
  const name = readConfig(env).registry ?? DEFAULT_REGISTRY;
  switch (name) {
    case 'local': {
      const { createFileRegistry, microFnHome } = await import('./local/index.js');
      return createFileRegistry({ home: microFnHome(env) });
    }
    case 'memory':
      return (await import('./memory/registry.js')).createMemoryRegistry();
    case 'nats': {
      const config = readConfig(env);
      return (await import('./nats/registry.js')).createNatsRegistry({ address: natsAddress(config.registryAddress, config.brokerAddress) });
    }
    default:
      throw new ConfigError(`MICRO_REGISTRY must be one of ${REGISTRIES.join(', ')}; got "${name}"`);
  }
}

/** Settings of the shared brokers that the host running them picks (`micro-fn serve` passes its own). */
export interface BrokerSettings {
  /** JetStream: milliseconds a delivery may go unsettled before it is redelivered (default 30 000). */
  ackWait?: number;
  /** JetStream: messages pulled and handled at once per subscription (default 1). */
  concurrency?: number;
}

/** The broker named by `MICRO_BROKER` (default local); `registry` and `http` are what the local broker needs. */
export async function resolveBroker(env: Env, registry: Registry, http: Transport, settings: BrokerSettings = {}): Promise<Broker> {
  const config = readConfig(env);
  const name = config.broker ?? DEFAULT_BROKER;
  switch (name) {
    case 'local':
      return (await import('./local/broker.js')).createLocalBroker({ registry, transport: http });
    case 'memory':
      return (await import('./memory/broker.js')).createMemoryBroker();
    case 'nats':
      return (await import('./nats/broker.js')).createNatsBroker({ address: natsAddress(config.brokerAddress, config.registryAddress) });
    case 'jetstream':
      return (await import('./nats/jetstream.js')).createJetStreamBroker({ address: natsAddress(config.brokerAddress, config.registryAddress), ...settings });
    default:
      throw new ConfigError(`MICRO_BROKER must be one of ${BROKERS.join(', ')}; got "${name}"`);
  }
}

/** The transport a standalone function listens with (`MICRO_TRANSPORT`, default http). */
export function listenTransport(env: Env, plugins: Plugins): Transport {
  const name = readConfig(env).transport ?? 'http';
  const found = plugins.transports.find((t) => t.schemes.includes(name));
  if (!found) throw new ConfigError(`MICRO_TRANSPORT must be http or nats; got "${name}"`);
  return found;
}

/** Whether the environment uses NATS at all (then calls to `nats://` nodes are possible). */
export function usesNats(env: Env): boolean {
  const c = readConfig(env);
  return c.registry === 'nats' || c.broker === 'nats' || c.broker === 'jetstream' || c.transport === 'nats';
}

/**
 * Calls to `lambda://` nodes. The transport, and the AWS SDK with it, load on the first such call: a host that
 * never calls a Lambda function pays nothing for being able to.
 */
function lazyLambdaTransport(env: Env): Transport {
  let loaded: Promise<Transport> | undefined;
  const load = () => (loaded ??= import('./lambda/transport.js').then((m) => m.createLambdaTransport({ env })));
  return {
    schemes: ['lambda'],
    call: async (node, request, options) => (await load()).call(node, request, options),
    close: async () => (loaded ? (await loaded).close?.() : undefined),
  };
}

/** Registry, broker and the transports (HTTP; NATS when NATS is in use; Lambda), as the environment configures them. */
export async function resolvePlugins(env: Env): Promise<Plugins> {
  const [registry, { createHttpTransport }] = await Promise.all([resolveRegistry(env), import('./http/index.js')]);
  const http = createHttpTransport();
  const transports: Transport[] = [http];
  if (usesNats(env)) {
    const c = readConfig(env);
    // Calls connect to the server named in the node address unless an address is configured.
    const address = [c.registryAddress, c.brokerAddress].find((a) => a?.startsWith('nats://'));
    transports.push((await import('./nats/transport.js')).createNatsTransport({ address }));
  }
  transports.push(lazyLambdaTransport(env));
  const broker = await resolveBroker(env, registry, http);
  return {
    registry,
    broker,
    transports,
    async close() {
      await Promise.allSettled([registry.close?.(), broker.close?.(), ...transports.map((t) => t.close?.())]);
    },
  };
}
