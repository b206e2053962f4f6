import type { Broker, BrokerMessage } from './broker.js';
import type { Client } from './client.js';
import type { BaseContext, Context, Logger, MessageContext } from './context.js';
import { Metadata, PROPAGATED } from './metadata.js';
import { headers } from './metadata.js';
import type { SpanContext } from './trace-context.js';
import type { Span } from './trace.js';
import { NO_CLIENT, builtWithout } from './build-constants.js';
import { createConfig, type Config } from './function-config.js';
import { MicroError } from './errors.js';
import { createStore, type Store } from './store.js';
import { createSync, type Sync } from './sync.js';

/** What the dispatcher shares with every context it makes. */
export interface ContextShared {
  service: string;
  logger: Logger;
  client: Client;
  broker: Broker | undefined;
  env: Readonly<Record<string, unknown>>;
}

/**
 * The context behind `ctx`. The signal and the child client are made only when a handler asks for them: most
 * handlers never do, and the invocation path stays free of that work.
 */
export class BaseRequestContext implements BaseContext {
  readonly service: string;
  readonly logger: Logger;
  readonly broker: Broker | undefined;
  readonly env: Readonly<Record<string, unknown>>;
  readonly #shared: ContextShared;
  #client: Client | undefined;
  #controller: AbortController | undefined;
  #store: Store | undefined;
  #sync: Sync | undefined;
  #config: Config | undefined;
  /** The invocation's recorded span: set by the dispatcher before the handler runs. */
  span: Span | undefined;

  get trace(): SpanContext | undefined {
    return this.span?.context;
  }

  constructor(
    shared: ContextShared,
    readonly id: string,
    readonly metadata: Metadata,
    readonly deadline: number | undefined,
  ) {
    this.#shared = shared;
    this.service = shared.service;
    this.logger = shared.logger;
    this.broker = shared.broker;
    this.env = shared.env;
  }

  get client(): Client {
    // A branch, not an early return: what only the dead branch names is dropped with it (build-constants.ts).
    if (globalThis.__MICRO_FN_NO_CLIENT__) throw new MicroError(this.service, 500, NO_CLIENT);
    else if (!this.#client) {
      const carry = new Metadata();
      for (const key of PROPAGATED) {
        const value = this.metadata.get(key);
        if (value !== undefined) carry.set(key, value);
      }
      // Calls out are children of this invocation's span: the client starts theirs from it.
      if (this.span) carry.set(headers.traceparent, this.span.traceparent);
      this.#client = this.#shared.client.with({ metadata: carry, deadline: this.deadline });
    }
    return this.#client;
  }

  /** The function's own namespace of the store; the plugin is opened on its first operation. */
  get store(): Store {
    return globalThis.__MICRO_FN_NO_STORE__
      ? without(this.service, 'store')
      : (this.#store ??= createStore(() => this.#shared.client.storeBackend(), this.service));
  }

  /** Locks and elections in the function's own namespace; waits end at this invocation's signal. */
  get sync(): Sync {
    return globalThis.__MICRO_FN_NO_SYNC__
      ? without(this.service, 'sync')
      : (this.#sync ??= createSync(
          () => this.#shared.client.syncBackend(),
          this.service,
          () => this.signal,
        ));
  }

  /** The function's configuration; this invocation's snapshot is read on the first read, its plugin opened then. */
  get config(): Config {
    return globalThis.__MICRO_FN_NO_CONFIG__
      ? without(this.service, 'config')
      : (this.#config ??= createConfig({
          service: this.service,
          env: this.env,
          open: () => this.#shared.client.configBackend(),
          signal: () => this.signal,
          logger: this.logger,
        }));
  }

  /** Fired by the dispatcher when the deadline passes or the function stops (see Inflight), never by a timer here. */
  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  /** Fires the signal now with `reason` (the deadline passed, the function is stopping), made or not yet. */
  abort(reason: unknown): void {
    (this.#controller ??= new AbortController()).abort(reason);
  }
}

export class RequestContext extends BaseRequestContext implements Context {
  readonly responseMetadata = new Metadata();
  #trailers: Metadata | undefined;

  /** Made when a handler asks for it: most never do. */
  get trailers(): Metadata {
    return (this.#trailers ??= new Metadata());
  }

  /** The trailers, when the handler set any. */
  get setTrailers(): Metadata | undefined {
    return this.#trailers;
  }

  constructor(
    shared: ContextShared,
    id: string,
    readonly endpoint: string,
    metadata: Metadata,
    deadline: number | undefined,
  ) {
    super(shared, id, metadata, deadline);
  }
}

export class DeliveryContext extends BaseRequestContext implements MessageContext {
  readonly topic: string;

  constructor(
    shared: ContextShared,
    readonly message: BrokerMessage,
    readonly attempt: number,
    metadata: Metadata,
    deadline: number | undefined,
  ) {
    super(shared, message.id, metadata, deadline);
    this.topic = message.topic;
  }
}

/** `ctx.store`, `ctx.sync` or `ctx.config` in a bundle built without it (build-constants.ts). */
function without(service: string, what: 'store' | 'sync' | 'config'): never {
  throw new MicroError(service, 500, builtWithout(what));
}
