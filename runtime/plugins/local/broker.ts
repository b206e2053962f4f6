/**
 * The local broker, as seen from any process on this machine: a client of the broker that `micro-fn serve`
 * hosts, found through the registry (its control service `micro-fn`), as go-micro's http broker registered
 * itself. Delivery is at-least-once, across restarts of serve too: serve keeps messages on disk.
 *
 * A subscription long-polls serve for deliveries and settles each one there. A delivery left unsettled (its
 * process died) is delivered again once serve's ack wait or the subscription's lease runs out.
 */
import type {
  Broker,
  Delivery,
  DeliveryFailure,
  DeliveryHandler,
  PublishMessage,
  SubscribeOptions,
  Subscription,
} from '../../core/broker.js';
import { Client } from '../../core/client.js';
import { errors, isMicroError } from '../../core/errors.js';
import type { Registry } from '../../core/registry.js';
import type { Transport } from '../../core/transport.js';
import { isLoopback } from '../../core/loopback.js';
import { Metadata } from '../../core/metadata.js';
import { readCredential } from './credential.js';
import { RUNTIME_SERVICE, type ControlApi, type ControlEndpoint, type RemoteDelivery } from './protocol.js';

export interface LocalBrokerOptions {
  registry: Registry;
  /** A transport for `http://` addresses. */
  transport: Transport;
  /**
   * MICRO_FN_HOME: subscribing needs serve's credential, read from there when first needed. Without it, only
   * publishing works (and, under `serve --auth`, only with a token).
   */
  home?: string;
}

export class LocalBroker implements Broker {
  /** Calls that send serve's control token: subscriptions, and a publish serve refused without one. */
  readonly #client: Client;
  /** Publishes: with the publisher's own token (the message's `Authorization`), if any; serve's is not read. */
  readonly #open: Client;
  readonly #subscriptions = new Set<RemoteSubscription>();
  #closed = false;

  constructor(options: LocalBrokerOptions) {
    const { registry, transport, home } = options;
    let token: string | null | undefined;
    // Read once, when first needed: a process that only publishes never opens the credential.
    const read = () => (token ??= (home === undefined ? undefined : readCredential(home)?.control) ?? null);
    this.#client = new Client({ registry, transports: [withControlToken(transport, read)], retries: 2 });
    this.#open = new Client({ registry, transports: [transport], retries: 2 });
  }

  async publish(topic: string, message: PublishMessage): Promise<void> {
    this.#refuseClosed(`publish to ${topic}`);
    const headers = message.headers ?? {};
    const request = { topic, headers, body: new TextDecoder().decode(message.body) };
    const authorization = headers.authorization ?? headers.Authorization;
    try {
      await this.#runtime('Broker.Publish', request, undefined, {
        client: this.#open,
        metadata: authorization ? { authorization } : undefined,
      });
    } catch (err) {
      // serve --auth wants a token and the message carries none: a process of serve's own user has serve's.
      if (!(isMicroError(err) && err.code === 401) || authorization) throw err;
      await this.#runtime('Broker.Publish', request);
    }
  }

  async subscribe(topic: string, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    this.#refuseClosed(`subscribe to ${topic}`);
    const { id, ackWait } = await this.#runtime('Broker.Subscribe', { topic, queue: options.queue, max: options.max });
    const subscription = new RemoteSubscription(topic, id, ackWait, handler, options, this.#runtime, () =>
      this.#subscriptions.delete(subscription),
    );
    this.#subscriptions.add(subscription);
    return subscription;
  }

  /** Ends every subscription (serve hands back what they held but did not settle) and refuses what comes after. */
  async close(): Promise<void> {
    this.#closed = true;
    const subscriptions = [...this.#subscriptions];
    this.#subscriptions.clear();
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
  }

  #refuseClosed(what: string): void {
    if (this.#closed) throw errors.unavailable('micro-fn', `the local broker is closed: cannot ${what}`);
  }

  /** Calls serve's control service; a missing serve is a clear 503. */
  readonly #runtime: Runtime = async (endpoint, request, timeout = 10_000, via = {}) => {
    try {
      // Typed by ControlApi through Runtime's signature.
      return await (via.client ?? this.#client).call<never>(RUNTIME_SERVICE, endpoint, request, {
        timeout,
        retries: 2,
        metadata: via.metadata,
      });
    } catch (err) {
      if (isMicroError(err) && err.code === 404 && /service micro-fn not found/.test(err.detail)) {
        throw errors.unavailable(
          'micro-fn',
          'the local broker is hosted by `micro-fn serve`, and none is running: start it, or choose another broker (MICRO_BROKER)',
        );
      }
      throw err;
    }
  };
}

type Runtime = <E extends ControlEndpoint>(
  endpoint: E,
  request: ControlApi[E]['request'],
  timeout?: number,
  via?: { client?: Client; metadata?: Record<string, string> },
) => Promise<ControlApi[E]['response']>;

/**
 * `transport`, sending serve's control token (from `token`) with each call that carries no `Authorization` of its
 * own, to a node on this machine only: a service registered under serve's name elsewhere never sees it.
 */
function withControlToken(transport: Transport, token: () => string | null): Transport {
  return {
    schemes: transport.schemes,
    call(node, request, options) {
      const value = isLoopback(node.address) && !request.metadata.has('authorization') ? token() : null;
      if (value)
        request = { ...request, metadata: new Metadata(request.metadata).set('authorization', `Bearer ${value}`) };
      return transport.call(node, request, options);
    },
  };
}

const POLL_WAIT = 5_000;

/** Long-polls serve for the deliveries of one subscription until unsubscribed or `max` is reached. */
class RemoteSubscription implements Subscription {
  readonly topic: string;
  readonly #id: string;
  readonly #runtime: Runtime;
  readonly #ackWait: number;
  #active = true;
  #taken = 0;

  readonly #ended: () => void;

  constructor(
    topic: string,
    id: string,
    ackWait: number,
    handler: DeliveryHandler,
    options: SubscribeOptions,
    runtime: Runtime,
    ended: () => void,
  ) {
    this.topic = topic;
    this.#id = id;
    this.#ackWait = ackWait;
    this.#runtime = runtime;
    this.#ended = ended;
    void this.#loop(handler, options).finally(ended);
  }

  async #loop(handler: DeliveryHandler, options: SubscribeOptions): Promise<void> {
    let failures = 0;
    while (this.#active && (options.max === undefined || this.#taken < options.max)) {
      let delivery: RemoteDelivery | null;
      try {
        ({ delivery } = await this.#runtime('Broker.Poll', { id: this.#id, wait: POLL_WAIT }, POLL_WAIT + 5_000));
        failures = 0;
      } catch (err) {
        if (!this.#active) return;
        // serve restarted or went away: the subscription is gone with it.
        if (isMicroError(err) && err.code === 404) return void (this.#active = false);
        await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** failures++)));
        continue;
      }
      if (!delivery || !this.#active) continue;
      this.#taken++;
      void this.#handle(handler, options, delivery);
    }
  }

  async #handle(handler: DeliveryHandler, options: SubscribeOptions, d: RemoteDelivery): Promise<void> {
    let settled = false;
    // While the handler works, tell serve the message is in progress; a process that dies stops telling.
    const progress = setInterval(
      () => void this.#runtime('Broker.Settle', { id: this.#id, token: d.token, action: 'progress' }).catch(() => {}),
      Math.max(100, this.#ackWait / 3),
    );
    const settle = (action: 'ack' | 'nak' | 'term', delay?: number, reason?: string, failure?: DeliveryFailure) => {
      if (settled) return Promise.resolve();
      settled = true;
      clearInterval(progress);
      const error = failure && { code: failure.code, detail: failure.detail };
      return this.#runtime('Broker.Settle', { id: this.#id, token: d.token, action, delay, reason, error }).then(
        () => {},
      );
    };
    const delivery: Delivery = {
      message: { id: d.id, topic: d.topic, headers: d.headers, body: new TextEncoder().encode(d.body) },
      attempt: d.attempt,
      ack: () => settle('ack'),
      nak: (delay, failure) => settle('nak', delay, undefined, failure),
      term: (reason) => settle('term', undefined, reason),
    };
    try {
      await handler(delivery);
      if (options.ack !== 'manual') await settle('ack');
    } catch (err) {
      const failure = isMicroError(err) ? err : { code: 500, detail: (err as Error)?.message ?? String(err) };
      await settle('nak', undefined, undefined, failure).catch(() => {});
    } finally {
      clearInterval(progress);
    }
  }

  async unsubscribe(): Promise<void> {
    if (!this.#active) return;
    this.#active = false;
    this.#ended();
    await this.#runtime('Broker.Unsubscribe', { id: this.#id }).catch(() => {});
  }
}

export function createLocalBroker(options: LocalBrokerOptions): LocalBroker {
  return new LocalBroker(options);
}
