/**
 * The local plugin's descriptors: the embedded default on Node, needing no server. The registry is a folder of
 * files under MICRO_FN_HOME shared by every local process; the broker is the one `micro-fn serve` hosts, reached
 * through its control service.
 */
import { ConfigError } from '../../core/config.js';
import type { BrokerPlugin, RegistryPlugin } from '../../core/plugin.js';

export const localRegistry: RegistryPlugin = {
  kind: 'registry',
  name: 'local',
  summary: 'files under MICRO_FN_HOME, shared by every process on this machine',
  platforms: ['node'],
  defaultOn: ['node'],
  async create({ env }) {
    const [{ createFileRegistry }, { microFnHome }] = await Promise.all([import('./registry.js'), import('./home.js')]);
    return createFileRegistry({ home: microFnHome(env) });
  },
};

export const localBroker: BrokerPlugin = {
  kind: 'broker',
  name: 'local',
  summary: 'hosted by micro-fn serve, found through the registry',
  platforms: ['node'],
  defaultOn: ['node'],
  async create({ env, registry, http }) {
    if (!registry || !http)
      throw new ConfigError('the local broker needs a registry and an HTTP transport to find micro-fn serve');
    const [{ createLocalBroker }, { microFnHome }] = await Promise.all([import('./broker.js'), import('./home.js')]);
    return createLocalBroker({ registry, transport: http, home: microFnHome(env) });
  },
};
