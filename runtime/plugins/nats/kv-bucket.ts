/**
 * A JetStream KV bucket opened on first use, as the registry, the store, sync and config use theirs: the first
 * `get()` connects (a share of the set's connection) and binds to the bucket or creates it; calls meanwhile share
 * that open; a failed open is forgotten, so NATS may be back by the next call; `close()` refuses later calls and
 * gives the connection back. The bucket and its keys stay.
 */
import type { KV, KvOptions, NatsConnection } from 'nats';
import { lazyConnection, type LazyConnection, type NatsConnectionSource } from './connections.js';

export interface KvBucketOptions {
  /** Where the connection comes from; a borrowed `connection` is never closed. */
  source: NatsConnectionSource;
  /** The connection name, when this bucket is the one that opens it. */
  name: string;
  bucket: string;
  /** The bucket's settings when it is created (history, allow_direct...). */
  kv: Partial<KvOptions>;
  /** The error of a call after `close()`. */
  closed(): Error;
  /** The error a failure to bind to (or create) the bucket becomes; a failure to connect is passed on as it is. */
  failed(err: unknown): Error;
}

export class KvBucket {
  readonly #options: KvBucketOptions;
  readonly #connection: LazyConnection;
  #kv: Promise<KV> | undefined;
  #closed = false;

  constructor(options: KvBucketOptions) {
    this.#options = options;
    this.#connection = lazyConnection(options.source, options.name);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The bucket, opened on the first call. */
  get(): Promise<KV> {
    if (this.#closed) return Promise.reject(this.#options.closed());
    return (this.#kv ??= this.#open().catch((err: unknown) => {
      this.#kv = undefined; // NATS may be back next time
      throw err;
    }));
  }

  /** The connection the bucket is on (opening it): for what the KV view does not offer (stream purges). */
  connection(): Promise<NatsConnection> {
    if (this.#closed) return Promise.reject(this.#options.closed());
    return this.#connection.get();
  }

  /** Refuses later calls and gives the connection back (the last share drains it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#connection.close();
  }

  async #open(): Promise<KV> {
    const nc = await this.#connection.get();
    if (this.#closed) throw this.#options.closed();
    const { bucket, kv, failed } = this.#options;
    return nc
      .jetstream()
      .views.kv(bucket, kv)
      .catch((err: unknown) => Promise.reject(failed(err)));
  }
}
