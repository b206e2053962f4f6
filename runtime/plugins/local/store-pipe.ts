/**
 * The way a function process under `micro-fn serve` reaches the local store: its pipe to serve
 * (adapters/local/handler.ts installs it when serve offers it, STORE_PIPE_ENV), used by the local store, sync and
 * config plugins in place of an HTTP call to serve's control service. A module of its own, so the function's entry
 * can install it without loading the store.
 */
import type { ControlApi, StoreEndpoint } from './protocol.js';

export type StorePipe = <E extends StoreEndpoint>(
  endpoint: E,
  request: ControlApi[E]['request'],
) => Promise<ControlApi[E]['response']>;

/**
 * Set to `1` by serve for the function processes it starts: it answers their store operations on their pipe
 * (adapters/local/ipc.ts, IpcStoreCall), which spares each one an HTTP round trip to its control service.
 */
export const STORE_PIPE_ENV = 'MICRO_FN_STORE_PIPE';

let installed: StorePipe | undefined;

/** From now on, this process's local store operations go through `pipe`. */
export function installStorePipe(pipe: StorePipe): void {
  installed = pipe;
}

/** The pipe installed in this process, if any. */
export function storePipe(): StorePipe | undefined {
  return installed;
}
