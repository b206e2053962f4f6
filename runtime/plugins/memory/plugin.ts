/**
 * The memory plugin's descriptors: a registry and a broker that live inside one process (tests, a single
 * long-running host). Nothing is shared between processes, so a one-shot function's host rarely wants them.
 */
import type { BrokerPlugin, ConfigPlugin, RegistryPlugin, StorePlugin, SyncPlugin } from '../../core/plugin.js';

export const memoryRegistry: RegistryPlugin = {
  kind: 'registry',
  name: 'memory',
  summary: 'in this process only, with TTL expiry and watch',
  platforms: ['node', 'web'],
  create: async () => (await import('./registry.js')).createMemoryRegistry(),
};

export const memoryBroker: BrokerPlugin = {
  kind: 'broker',
  name: 'memory',
  summary: 'in this process only: at-least-once while it lives, queue groups, redelivery, dead letters',
  platforms: ['node', 'web'],
  create: async () => (await import('./broker.js')).createMemoryBroker(),
};

export const memoryStore: StorePlugin = {
  kind: 'store',
  name: 'memory',
  summary: 'in this process only: strongly consistent, atomic compare-and-set, TTLs',
  platforms: ['node', 'web'],
  create: async () => (await import('./store.js')).createMemoryStore(),
};

export const memorySync: SyncPlugin = {
  kind: 'sync',
  name: 'memory',
  summary: 'locks and elections in this process only (a memory store of its own)',
  platforms: ['node', 'web'],
  create: async () => (await import('./sync.js')).createMemorySync(),
};

export const memoryConfig: ConfigPlugin = {
  kind: 'config',
  name: 'memory',
  summary: 'the keys of ctx.config in this process only (a memory store of its own)',
  platforms: ['node', 'web'],
  create: async () => (await import('./store.js')).createMemoryStore(),
};
