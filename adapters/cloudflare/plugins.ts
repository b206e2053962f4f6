/**
 * The plugins of one Worker invocation, as its env configures them: HTTP calls through fetch, and the NATS
 * registry and brokers reached over WebSocket. They are made when the handler first calls out or publishes, and
 * closed before the invocation ends: Workers forbid using one request's I/O objects in another, so nothing is
 * kept between invocations.
 */
import { ConfigError, readConfig, type Broker, type Env, type Registry, type Transport } from '../../runtime/core/index.js';
import { HttpClient } from '../../runtime/plugins/http/client.js';

export interface WorkerPlugins {
  registry?: Registry;
  broker?: Broker;
  transports: Transport[];
  /** Closes what was opened (NATS connections are drained: what was published is flushed). */
  close(): Promise<void>;
}

/** The NATS settings of a Worker, checked: only `ws://` / `wss://` addresses reach NATS from a Worker. */
export interface WorkerNatsConfig {
  registry?: string;
  broker?: { kind: 'nats' | 'jetstream'; address: string };
}

/** Reads `MICRO_REGISTRY` / `MICRO_BROKER` and their addresses for a Worker; throws a ConfigError that says what fits. */
export function workerNatsConfig(env: Env): WorkerNatsConfig {
  const c = readConfig(env);
  const config: WorkerNatsConfig = {};
  if (c.registry !== undefined) {
    if (c.registry !== 'nats') throw new ConfigError(`MICRO_REGISTRY=${c.registry} does not work in a Worker, which keeps nothing between invocations: use nats, with MICRO_REGISTRY_ADDRESS=wss://host:port`);
    config.registry = webSocketAddress('MICRO_REGISTRY_ADDRESS', c.registryAddress ?? c.brokerAddress);
  }
  if (c.broker !== undefined) {
    if (c.broker !== 'nats' && c.broker !== 'jetstream') throw new ConfigError(`MICRO_BROKER=${c.broker} does not work in a Worker: use nats or jetstream, with MICRO_BROKER_ADDRESS=wss://host:port`);
    config.broker = { kind: c.broker, address: webSocketAddress('MICRO_BROKER_ADDRESS', c.brokerAddress ?? c.registryAddress) };
  }
  return config;
}

function webSocketAddress(name: string, address: string | undefined): string {
  const parts = address?.split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  if (parts.length === 0 || !parts.every((p) => /^wss?:\/\//i.test(p))) {
    throw new ConfigError(
      `a Worker reaches NATS over WebSocket only: set ${name} to ws://host:port or wss://host:port (nats-server's websocket listener)${address ? `; got "${address}"` : ''}`,
    );
  }
  return address!;
}

/** The plugins `env` asks for. The NATS code (and its client library) is imported only when NATS is configured. */
export async function workerPlugins(env: Env): Promise<WorkerPlugins> {
  const nats = workerNatsConfig(env);
  const http = new HttpClient();
  const transports: Transport[] = [{ schemes: ['http', 'https'], call: (node, request, options) => http.call(node, request, options) }];
  if (!nats.registry && !nats.broker) return { transports, close: async () => {} };
  const { natsPlugins } = await import('./nats.js');
  const opened = natsPlugins(nats);
  return { ...opened, transports: [...transports, ...opened.transports] };
}
