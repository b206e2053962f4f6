/**
 * The local store, as seen from any process on this machine: a client of the store `micro-fn serve` keeps under
 * MICRO_FN_HOME (LMDB, serve/store/kv.ts), reached through its control service (`Store.*`), as the local broker
 * reaches serve's broker. A function process under serve runs as another user and must not open LMDB itself; it
 * sends the store token serve gave it (MICRO_FN_STORE_TOKEN). Any other process (`micro-fn invoke`, `run`, the CLI)
 * sends serve's control token, read from MICRO_FN_HOME's credential: it has to be serve's user. Without a serve
 * running, every operation is a 503 that says to start one. A function process whose serve answers store operations
 * on its pipe (store-pipe.ts) sends them there instead: no HTTP round trip, no token.
 */
import { Client } from '../../core/client.js';
import { errors, isMicroError } from '../../core/errors.js';
import { isLoopback } from '../../core/loopback.js';
import { Metadata } from '../../core/metadata.js';
import type { Registry } from '../../core/registry.js';
import type { RawEntry, StoreBackend, StoreDeleteOptions, StoreGuarantees, StoreSetOptions } from '../../core/store.js';
import type { Transport } from '../../core/transport.js';
import { readCredential } from './credential.js';
import { RUNTIME_SERVICE, type ControlApi, type StoreEndpoint } from './protocol.js';
import { storePipe } from './store-pipe.js';

export interface LocalStoreOptions {
  registry: Registry;
  /** A transport for `http://` addresses. */
  transport: Transport;
  /** MICRO_FN_HOME, where serve's credential is read when no `token` is given. */
  home?: string;
  /** The store token serve gave this function process (MICRO_FN_STORE_TOKEN). */
  token?: string;
}

/** The 503's detail when no `micro-fn serve` is running to keep the store. */
export const NO_SERVE =
  'the local store is kept by `micro-fn serve`, and none is running: start it, or choose another store (MICRO_STORE)';

/** Milliseconds a store operation may take, serve's LMDB write and flush included. */
const TIMEOUT = 10_000;

export class LocalStore implements StoreBackend {
  readonly guarantees: StoreGuarantees = { compareAndSet: true, consistency: 'strong' };
  readonly #client: Client;

  constructor(options: LocalStoreOptions) {
    const { registry, transport, home } = options;
    let token: string | null | undefined = options.token;
    // Read once, when first needed; only for a node on this machine (withToken).
    const read = () => (token ??= (home === undefined ? undefined : readCredential(home)?.control) ?? null);
    this.#client = new Client({ registry, transports: [withToken(transport, read)] });
  }

  async get(namespace: string, key: string): Promise<RawEntry | undefined> {
    return (await this.#call('Store.Get', { namespace, key })).entry ?? undefined;
  }

  async set(namespace: string, key: string, value: string, options: StoreSetOptions): Promise<number> {
    const { ttl, revision } = options;
    return (await this.#call('Store.Set', { namespace, key, value, ttl, revision })).revision;
  }

  async delete(namespace: string, key: string, options: StoreDeleteOptions): Promise<boolean> {
    return (await this.#call('Store.Delete', { namespace, key, revision: options.revision })).deleted;
  }

  list(namespace: string, prefix: string, options: { limit: number; cursor?: string }) {
    return this.#call('Store.List', { namespace, prefix, limit: options.limit, cursor: options.cursor });
  }

  async #call<E extends StoreEndpoint>(endpoint: E, request: ControlApi[E]['request']) {
    const pipe = storePipe();
    if (pipe) return pipe(endpoint, request);
    try {
      // Retried only where serve provably ran nothing (the client's rule): a write is never applied twice.
      return await this.#client.call<ControlApi[E]['response']>(RUNTIME_SERVICE, endpoint, request, {
        timeout: TIMEOUT,
        retries: 2,
      });
    } catch (err) {
      if (isMicroError(err) && err.code === 404 && /service micro-fn not found/.test(err.detail))
        throw errors.unavailable('micro-fn', NO_SERVE);
      throw err;
    }
  }
}

/** `transport`, sending the store's token as `Authorization: Bearer` to a node on this machine only. */
function withToken(transport: Transport, token: () => string | null): Transport {
  return {
    schemes: transport.schemes,
    call(node, request, options) {
      const value = isLoopback(node.address) ? token() : null;
      if (value)
        request = { ...request, metadata: new Metadata(request.metadata).set('authorization', `Bearer ${value}`) };
      return transport.call(node, request, options);
    },
  };
}

export function createLocalStore(options: LocalStoreOptions): LocalStore {
  return new LocalStore(options);
}
