/**
 * The local plugins: the embedded default that needs no server. The registry is a folder of files under
 * `MICRO_FN_HOME` shared by every local process; the broker is hosted by `micro-fn serve`. Node only.
 */
export * from './broker.js';
export * from './home.js';
export * from './registry.js';
