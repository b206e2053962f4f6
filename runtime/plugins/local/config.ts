/**
 * The local config source: the `kv` layer of `ctx.config` (what `micro-fn config set` writes) in the store
 * `micro-fn serve` keeps under MICRO_FN_HOME, in a namespace of its own (function-config.ts's CONFIG_NAMESPACE), as
 * one JSON object per function. Reached as the local store is, with the store token serve gave the function. Without
 * a serve running it is `absent`: a function then reads its environment and config.json only, and says so.
 */
import { MicroError, isMicroError } from '../../core/errors.js';
import type { ConfigBackend } from '../../core/function-config.js';
import { NO_SERVE, createLocalStore, type LocalStoreOptions } from './store.js';

/** The 503's detail when no `micro-fn serve` is running to keep the local config. */
export const NO_SERVE_CONFIG =
  'the local config (micro-fn config set) is kept by `micro-fn serve`, and none is running: start it, or choose another source (MICRO_CONFIG)';

export function createLocalConfig(options: LocalStoreOptions): ConfigBackend {
  const store = createLocalStore(options);
  const say = <T>(p: Promise<T>): Promise<T> =>
    p.catch((err: unknown) => {
      throw isMicroError(err) && err.code === 503 && err.detail === NO_SERVE
        ? new MicroError(err.id, 503, NO_SERVE_CONFIG, { cause: err })
        : err;
    });
  return {
    guarantees: store.guarantees,
    get: (namespace, key) => say(store.get(namespace, key)),
    set: (namespace, key, value, o) => say(store.set(namespace, key, value, o)),
    delete: (namespace, key, o) => say(store.delete(namespace, key, o)),
    absent: (err) => isMicroError(err) && err.code === 503 && err.detail === NO_SERVE_CONFIG,
  };
}
