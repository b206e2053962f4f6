/**
 * The local plugin's descriptors: the embedded default on Node, needing no server. The registry is a folder of
 * files under MICRO_FN_HOME shared by every local process; the broker is the one `micro-fn serve` hosts, reached
 * through its control service.
 */
import { ConfigError } from '../../core/config.js';
import { STORE_TOKEN_ENV } from './protocol.js';
import type { BrokerPlugin, ConfigPlugin, RegistryPlugin, StorePlugin, SyncPlugin } from '../../core/plugin.js';

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

export const localStore: StorePlugin = {
  kind: 'store',
  name: 'local',
  summary: 'the embedded store under MICRO_FN_HOME, kept by micro-fn serve and shared by every local process',
  platforms: ['node'],
  defaultOn: ['node'],
  async create({ env, registry, http }) {
    if (!registry || !http)
      throw new ConfigError('the local store needs a registry and an HTTP transport to find micro-fn serve');
    const [{ createLocalStore }, { microFnHome }] = await Promise.all([import('./store.js'), import('./home.js')]);
    return createLocalStore({ registry, transport: http, home: microFnHome(env), token: env[STORE_TOKEN_ENV] });
  },
};

export const localSync: SyncPlugin = {
  kind: 'sync',
  name: 'local',
  summary: 'locks on the local store (micro-fn serve), shared by every process on this machine',
  platforms: ['node'],
  defaultOn: ['node'],
  async create({ env, registry, http }) {
    if (!registry || !http)
      throw new ConfigError('local sync needs a registry and an HTTP transport to find micro-fn serve');
    const [{ createLocalSync }, { microFnHome }] = await Promise.all([import('./sync.js'), import('./home.js')]);
    return createLocalSync({ registry, transport: http, home: microFnHome(env), token: env[STORE_TOKEN_ENV] });
  },
};

export const localConfig: ConfigPlugin = {
  kind: 'config',
  name: 'local',
  summary: 'the keys of ctx.config in the local store (micro-fn serve), shared by every process on this machine',
  platforms: ['node'],
  defaultOn: ['node'],
  async create({ env, registry, http }) {
    if (!registry || !http)
      throw new ConfigError('local config needs a registry and an HTTP transport to find micro-fn serve');
    const [{ createLocalConfig }, { microFnHome }] = await Promise.all([import('./config.js'), import('./home.js')]);
    return createLocalConfig({ registry, transport: http, home: microFnHome(env), token: env[STORE_TOKEN_ENV] });
  },
};
