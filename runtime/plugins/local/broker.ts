/**
 * The local broker, as seen from any process on this machine: a client of the broker that `micro-fn serve`
 * hosts, found through the registry (its control service `micro-fn`), as go-micro's http broker registered
 * itself. Delivery is at-least-once while serve runs; messages are kept in serve's memory.
 *
 * A subscription long-polls serve for deliveries and settles each one there. A delivery left unsettled (its
 * process died) is delivered again once serve's ack wait or the subscription's lease runs out.
 */
import type {
  Broker,
  Delivery,
  DeliveryHandler,
  PublishMessage,
  SubscribeOptions,
  Subscription,
} from '../../core/broker.js';
import { Client } from '../../core/client.js';
import { errors, isMicroError } from '../../core/errors.js';
import type { Registry } from '../../core/registry.js';
import type { Transport } from '../../core/transport.js';
import { callControl, type ControlApi, type ControlEndpoint, type RemoteDelivery } from './protocol.js';

export interface LocalBrokerOptions {
  registry: Registry;
  /** A transport for `http://` addresses. */
  transport: Transport;
}

export class LocalBroker implements Broker {
  readonly #client: Client;
  readonly #subscriptions = new Set<RemoteSubscription>();
  #closed = false;

  constructor(options: LocalBrokerOptions) {
    this.#client = new Client({ registry: options.registry, transports: [options.transport], retries: 2 });
  }

  async publish(topic: string, message: PublishMessage): Promise<void> {
    this.#open(`publish to ${topic}`);
    await this.#runtime('Broker.Publish', {
      topic,
      headers: message.headers ?? {},
      body: new TextDecoder().decode(message.body),
    });
  }

  async subscribe(topic: string, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    this.#open(`subscribe to ${topic}`);
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

  #open(what: string): void {
    if (this.#closed) throw errors.unavailable('micro-fn', `the local broker is closed: cannot ${what}`);
  }

  /** Calls serve's control service; a missing serve is a clear 503. */
  readonly #runtime: Runtime = async (endpoint, request, timeout = 10_000) => {
    try {
      return await callControl(this.#client, endpoint, request, { timeout, retries: 2 });
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
) => Promise<ControlApi[E]['response']>;

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
    const settle = (action: 'ack' | 'nak' | 'term', delay?: number, reason?: string) => {
      if (settled) return Promise.resolve();
      settled = true;
      clearInterval(progress);
      return this.#runtime('Broker.Settle', { id: this.#id, token: d.token, action, delay, reason }).then(() => {});
    };
    const delivery: Delivery = {
      message: { id: d.id, topic: d.topic, headers: d.headers, body: new TextEncoder().encode(d.body) },
      attempt: d.attempt,
      ack: () => settle('ack'),
      nak: (delay) => settle('nak', delay),
      term: (reason) => settle('term', undefined, reason),
    };
    try {
      await handler(delivery);
      if (options.ack !== 'manual') await settle('ack');
    } catch {
      await settle('nak').catch(() => {});
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
