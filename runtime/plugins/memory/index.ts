/**
 * The memory plugins: a registry, a broker and a transport that live inside one process. No server, no
 * files, no network; two instances never see each other. The default for tests and single-process hosts.
 */
export * from './registry.js';
export * from './broker.js';
export * from './transport.js';
export * from './store.js';
