/**
 * Subscriptions of other processes to the broker that `micro-fn serve` hosts (a `micro-fn run` function, say),
 * over the control service: Broker.Subscribe, then Broker.Poll (a long poll for the next delivery),
 * Broker.Settle and Broker.Unsubscribe. A delivery handed out is settled by its subscriber; one not settled
 * within the ack wait, or whose subscriber stopped polling (its lease ran out), is nakked and delivered again:
 * killing a subscriber in the middle of a message loses nothing.
 */
import type { Broker, Delivery, DeliveryFailure, Subscription } from '../runtime/core/broker.js';
import { errors } from '../runtime/core/errors.js';
import { newId } from '../runtime/core/id.js';
import type { RemoteDelivery } from '../runtime/plugins/local/protocol.js';

interface Remote {
  subscription: Subscription;
  pending: Delivery[];
  handedOut: Map<string, { delivery: Delivery; until: number }>;
  waiter: ((d: Delivery | undefined) => void) | undefined;
  leaseUntil: number;
  /** Unsubscribed: takes nothing more, and is kept only until what it has in hand is settled. */
  closed: boolean;
}

export interface RemoteBrokerOptions {
  /** Milliseconds a subscriber may go without polling before its subscription is dropped. */
  lease?: number;
  /** Milliseconds a handed-out delivery may stay unsettled. */
  ackWait?: number;
}

const HANDED_BACK: DeliveryFailure = { code: 503, detail: 'handed back unhandled: its subscriber unsubscribed' };
const GONE: DeliveryFailure = { code: 503, detail: 'its subscriber stopped polling, or serve stopped' };

export class RemoteSubscriptions {
  readonly #broker: Broker;
  readonly #remotes = new Map<string, Remote>();
  readonly #lease: number;
  readonly #ackWait: number;
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(broker: Broker, options: RemoteBrokerOptions = {}) {
    this.#broker = broker;
    this.#lease = options.lease ?? 15_000;
    this.#ackWait = options.ackWait ?? 30_000;
    this.#timer = setInterval(() => void this.#expire(), 500);
    this.#timer.unref();
  }

  async subscribe(topic: string, queue: string | undefined, max: number | undefined): Promise<string> {
    const id = newId();
    const remote: Remote = {
      subscription: undefined as unknown as Subscription,
      pending: [],
      handedOut: new Map(),
      waiter: undefined,
      leaseUntil: Date.now() + this.#lease,
      closed: false,
    };
    remote.subscription = await this.#broker.subscribe(
      topic,
      (delivery) => {
        const waiter = remote.waiter;
        remote.waiter = undefined;
        if (waiter) waiter(delivery);
        else remote.pending.push(delivery);
      },
      { queue, max, ack: 'manual' },
    );
    this.#remotes.set(id, remote);
    return id;
  }

  /** The next delivery of subscription `id`, waiting up to `wait` ms; undefined when none came. */
  async poll(id: string, wait: number): Promise<RemoteDelivery | undefined> {
    const remote = this.#get(id);
    if (remote.closed) return undefined;
    remote.leaseUntil = Date.now() + Math.max(wait, 0) + this.#lease;
    let delivery = remote.pending.shift();
    if (!delivery && wait > 0) {
      remote.waiter?.(undefined); // one poll at a time per subscription
      delivery = await new Promise<Delivery | undefined>((resolve) => {
        const timer = setTimeout(() => {
          if (remote.waiter === resolve) remote.waiter = undefined;
          resolve(undefined);
        }, wait);
        remote.waiter = (d) => {
          clearTimeout(timer);
          resolve(d);
        };
      });
    }
    if (!delivery) return undefined;
    const token = newId();
    remote.handedOut.set(token, { delivery, until: Date.now() + this.#ackWait });
    const { message, attempt } = delivery;
    return {
      token,
      id: message.id,
      topic: message.topic,
      headers: message.headers,
      body: new TextDecoder().decode(message.body),
      attempt,
    };
  }

  /** Milliseconds a delivery may stay unsettled without news: a subscriber sends `progress` more often. */
  get ackWait(): number {
    return this.#ackWait;
  }

  async settle(
    id: string,
    token: string,
    action: 'ack' | 'nak' | 'term' | 'progress',
    delay?: number,
    reason?: string,
    failure?: DeliveryFailure,
  ): Promise<void> {
    const remote = this.#get(id);
    const handed = remote.handedOut.get(token);
    if (!handed)
      throw errors.notFound(
        'micro-fn',
        `no unsettled delivery ${token}: it was settled already or its ack wait ran out`,
      );
    if (action === 'progress') {
      handed.until = Date.now() + this.#ackWait;
      return;
    }
    remote.handedOut.delete(token);
    if (remote.closed && remote.handedOut.size === 0) this.#remotes.delete(id);
    if (action === 'ack') await handed.delivery.ack();
    else if (action === 'term') await handed.delivery.term(reason);
    else await handed.delivery.nak(delay, failure);
  }

  /**
   * Takes nothing more. Messages not yet handed out go back to the broker; one being handled stays with its
   * subscriber until settled (a one-shot function unsubscribes the moment its message arrives).
   */
  async unsubscribe(id: string): Promise<void> {
    const remote = this.#remotes.get(id);
    if (!remote || remote.closed) return;
    remote.closed = true;
    remote.waiter?.(undefined);
    await remote.subscription.unsubscribe();
    await Promise.all(remote.pending.splice(0).map((d) => d.nak(0, HANDED_BACK).catch(() => {})));
    if (remote.handedOut.size === 0) this.#remotes.delete(id);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    const remotes = [...this.#remotes.values()];
    this.#remotes.clear();
    await Promise.all(remotes.map((r) => this.#drop(r)));
  }

  #get(id: string): Remote {
    const remote = this.#remotes.get(id);
    if (!remote || (remote.closed && remote.handedOut.size === 0))
      throw errors.notFound('micro-fn', `no subscription ${id} (it ended, or its lease ran out)`);
    return remote;
  }

  /** Unsubscribes and hands every message it held back to the broker. */
  async #drop(remote: Remote): Promise<void> {
    remote.waiter?.(undefined);
    if (!remote.closed) await remote.subscription.unsubscribe();
    remote.closed = true;
    const held = [...remote.pending.splice(0), ...[...remote.handedOut.values()].map((h) => h.delivery)];
    remote.handedOut.clear();
    await Promise.all(held.map((d) => d.nak(0, GONE).catch(() => {})));
  }

  async #expire(): Promise<void> {
    const now = Date.now();
    for (const [id, remote] of this.#remotes) {
      for (const [token, handed] of remote.handedOut) {
        if (handed.until < now) {
          remote.handedOut.delete(token);
          await handed.delivery
            .nak(undefined, {
              code: 408,
              detail: `not settled within the ack wait of ${this.#ackWait} ms (serve --ack-wait): its subscriber died or hangs`,
            })
            .catch(() => {});
        }
      }
      if (remote.closed ? remote.handedOut.size === 0 : remote.leaseUntil < now) {
        // Its subscriber stopped polling: it is gone, and so is what it held.
        this.#remotes.delete(id);
        await this.#drop(remote);
      }
    }
  }
}
