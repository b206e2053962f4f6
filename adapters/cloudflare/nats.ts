/**
 * NATS inside a Worker: the same registry, brokers and client as everywhere, over WebSocket. The Worker build
 * bundles `nats.ws` (nats.js's API over the platform's WebSocket) wherever the plugins import `nats`; each
 * plugin connects on first use and is closed (drained) when the invocation ends.
 */
import { NatsClient } from '../../runtime/plugins/nats/client.js';
import { createJetStreamBroker } from '../../runtime/plugins/nats/jetstream.js';
import { createNatsBroker } from '../../runtime/plugins/nats/broker.js';
import { createNatsRegistry } from '../../runtime/plugins/nats/registry.js';
import type { WorkerNatsConfig, WorkerPlugins } from './plugins.js';

const NAME = 'micro-fn-worker';

/** Registry, broker and a transport for `nats://` nodes, as `config` names them; nothing connects yet. */
export function natsPlugins(config: WorkerNatsConfig): WorkerPlugins {
  const registry = config.registry === undefined ? undefined : createNatsRegistry({ address: config.registry });
  const { kind, address } = config.broker ?? {};
  const broker = address === undefined ? undefined : kind === 'jetstream' ? createJetStreamBroker({ address, name: NAME }) : createNatsBroker({ address, name: NAME });
  // Calls to nats:// nodes go through the configured server: the one in a node address is not reachable over WebSocket.
  const client = new NatsClient({ address: config.registry ?? address, name: NAME });
  return {
    registry,
    broker,
    transports: [{ schemes: ['nats'], call: (node, request, options) => client.call(node, request, options), close: () => client.close() }],
    async close() {
      await Promise.allSettled([registry?.close(), broker?.close(), client.close()]);
    },
  };
}
