import { deadLetterHeaders, deadLetterTopic, failedAttempt } from '../../core/broker.js';
import type {
  Broker,
  BrokerMessage,
  Delivery,
  DeliveryFailure,
  DeliveryHandler,
  FailedAttempt,
  PublishMessage,
  SubscribeOptions,
  Subscription,
} from '../../core/broker.js';
import { MicroError } from '../../core/errors.js';
import { newId } from '../../core/id.js';

export interface MemoryBrokerOptions {
  /** Deliveries a message gets before it is dead-lettered. Default 5. */
  maxAttempts?: number;
  /**
   * Milliseconds before redelivering after a `nak()` without a delay (or a handler that failed); `attempt` is
   * the one that failed. Default min(1000, 20·2^(attempt-1)): 20, 40, 80, … capped at one second.
   */
  backoff?: (attempt: number) => number;
  /**
   * Bytes of message bodies waiting in the broker at most: published and not yet settled (acked, dead-lettered
   * or dropped), counted once per group that holds one. A publish past it is refused with a retryable 503.
   * Default: no bound.
   */
  maxBytes?: number;
}

const defaultBackoff = (attempt: number): number => Math.min(1000, 20 * 2 ** (attempt - 1));

interface Member {
  handler: DeliveryHandler;
  manual: boolean;
  max: number;
  taken: number;
}

/** Every subscription without a queue is a group of its own; subscriptions sharing a queue share a group. */
interface Group {
  key: string;
  queue: boolean;
  members: Member[];
  /** Messages waiting for a member (redeliveries while the group is empty, or not yet dispatched). */
  pending: { message: BrokerMessage; attempt: number; held: number; failures: FailedAttempt[] }[];
  next: number;
  scheduled: boolean;
}

/**
 * A broker inside one process: publish and subscribe between the functions and services this process hosts.
 *
 * Delivery is at-least-once within the process lifetime: a message is handed to every plain subscription and
 * to one member of each queue group (round-robin, picked when it is dispatched), always asynchronously. A
 * nakked message is redelivered to a member of the same group after a backoff; after `maxAttempts` failed
 * deliveries, or on `term()`, it is published to `dlq.<topic>` with the dead-letter headers. Nothing is kept:
 * a message published to a topic without subscribers is dropped, and so are a dead-lettered message nobody
 * subscribed to, a redelivery for a plain subscription that has unsubscribed, and everything pending at `close()`.
 * A redelivery for a queue group whose members all left waits until a new member subscribes. A handler that
 * throws or rejects naks its delivery, with `ack: 'manual'` too, unless it settled it first.
 *
 * @example
 * import { createMemoryBroker } from 'micro-fn/memory';
 *
 * const broker = createMemoryBroker();
 * await broker.subscribe('orders', async ({ message }) => {
 *   console.log(new TextDecoder().decode(message.body)); // throwing would nak: redelivered later
 * }, { queue: 'billing' });
 * await broker.publish('orders', { body: new TextEncoder().encode('{"id":1}') });
 */
export class MemoryBroker implements Broker {
  /** topic -> group key -> group */
  readonly #topics = new Map<string, Map<string, Group>>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #maxAttempts: number;
  readonly #backoff: (attempt: number) => number;
  readonly #maxBytes: number;
  /** Bytes of messages waiting: pending in a group, handed over and not settled, or between retries. */
  #bytes = 0;
  #subscriptions = 0;
  #closed = false;

  constructor(options: MemoryBrokerOptions = {}) {
    const { maxAttempts = 5, backoff = defaultBackoff } = options;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
      throw new TypeError(`maxAttempts must be an integer >= 1; got ${String(maxAttempts)}`);
    if (typeof backoff !== 'function') throw new TypeError('backoff must be a function (attempt) => milliseconds');
    const { maxBytes = Infinity } = options;
    if (!(maxBytes > 0)) throw new TypeError(`maxBytes must be a positive number of bytes; got ${String(maxBytes)}`);
    this.#maxBytes = maxBytes;
    this.#maxAttempts = maxAttempts;
    this.#backoff = backoff;
  }

  /** Bytes of message bodies waiting in the broker now (see `maxBytes`). */
  get waitingBytes(): number {
    return this.#bytes;
  }

  /**
   * Resolves once the message is queued; a topic without subscribers drops it. Rejects with a 503 after `close()`,
   * and with a retryable 503 when the messages waiting would pass `maxBytes`.
   */
  async publish(topic: string, message: PublishMessage): Promise<void> {
    return this.#publish(topic, message, false);
  }

  /** `internal`: a dead letter, taken past the bound (refusing it would lose a message already accepted). */
  async #publish(topic: string, message: PublishMessage, internal: boolean): Promise<void> {
    if (this.#closed) throw new MicroError('memory-broker', 503, `broker is closed: cannot publish to ${topic}`);
    if (!(message?.body instanceof Uint8Array)) throw new TypeError('a published message needs a Uint8Array body');
    const groups = [...(this.#topics.get(topic)?.values() ?? [])].filter((g) => g.members.length > 0);
    const size = message.body.byteLength * groups.length;
    if (!internal && size > 0 && this.#bytes + size > this.#maxBytes)
      throw new MicroError(
        'memory-broker',
        503,
        `the broker holds ${this.#bytes} bytes of messages not yet handled, and ${size} more would pass its limit of ${this.#maxBytes}: publish again once subscribers catch up`,
      );
    const published: BrokerMessage = {
      id: newId(),
      topic,
      headers: { ...message.headers },
      body: message.body.slice(),
    };
    for (const group of groups) {
      this.#bytes += published.body.byteLength;
      this.#enqueue(group, published, 1, published.body.byteLength, []);
    }
  }

  async subscribe(topic: string, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closed) throw new MicroError('memory-broker', 503, `broker is closed: cannot subscribe to ${topic}`);
    if (typeof handler !== 'function') throw new TypeError('subscribe needs a handler function');
    const { queue, max = Infinity, ack = 'auto' } = options;
    if (max !== Infinity && (!Number.isInteger(max) || max < 1))
      throw new TypeError(`max must be an integer >= 1; got ${String(max)}`);
    if (ack !== 'auto' && ack !== 'manual') throw new TypeError(`ack must be 'auto' or 'manual'; got ${String(ack)}`);
    const member: Member = { handler, manual: ack === 'manual', max, taken: 0 };
    const key = queue ? `queue:${queue}` : `sub:${++this.#subscriptions}`;
    const group = this.#group(topic, key, true)!;
    group.members.push(member);
    this.#schedule(group);
    return { topic, unsubscribe: async () => this.#leave(topic, group, member) };
  }

  /** Cancels redeliveries and drops every subscription and pending message. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#topics.clear();
    this.#bytes = 0;
  }

  /** A message a group held is settled or dropped: its bytes no longer wait. */
  #release(held: number): void {
    this.#bytes = Math.max(0, this.#bytes - held);
  }

  #group(topic: string, key: string, create: boolean): Group | undefined {
    let groups = this.#topics.get(topic);
    if (!groups && create) this.#topics.set(topic, (groups = new Map()));
    let group = groups?.get(key);
    if (!group && groups && create)
      groups.set(
        key,
        (group = { key, queue: key.startsWith('queue:'), members: [], pending: [], next: 0, scheduled: false }),
      );
    return group;
  }

  /** Removes `member`; forgets the group once nothing waits in it (a plain subscription's pending go with it). */
  #leave(topic: string, group: Group, member: Member): void {
    const index = group.members.indexOf(member);
    if (index < 0) return;
    group.members.splice(index, 1);
    if (group.members.length > 0 || (group.queue && group.pending.length > 0)) return;
    // A plain subscription's pending messages go with it.
    for (const { held } of group.pending.splice(0)) this.#release(held);
    const groups = this.#topics.get(topic);
    if (groups?.get(group.key) === group) groups.delete(group.key);
    if (groups?.size === 0) this.#topics.delete(topic);
  }

  #enqueue(group: Group, message: BrokerMessage, attempt: number, held: number, failures: FailedAttempt[]): void {
    group.pending.push({ message, attempt, held, failures });
    this.#schedule(group);
  }

  /** Dispatches in a microtask: never inside the caller's stack, and members are picked at dispatch time. */
  #schedule(group: Group): void {
    if (group.scheduled || group.pending.length === 0) return;
    group.scheduled = true;
    queueMicrotask(() => {
      group.scheduled = false;
      while (!this.#closed && group.pending.length > 0 && group.members.length > 0) {
        const member = group.members[group.next++ % group.members.length]!;
        const { message, attempt, held, failures } = group.pending.shift()!;
        // Leave the group the moment the last allowed message is handed over, so it is never offered another.
        if (++member.taken >= member.max) this.#leave(message.topic, group, member);
        this.#deliver(group, member, message, attempt, held, failures);
      }
    });
  }

  #deliver(
    group: Group,
    member: Member,
    message: BrokerMessage,
    attempt: number,
    held: number,
    failures: FailedAttempt[],
  ): void {
    let settled = false;
    const settle = (then: () => void) => async () => {
      if (settled) return;
      settled = true;
      if (!this.#closed) then();
    };
    const delivery: Delivery = {
      message: { ...message, headers: { ...message.headers }, body: message.body.slice() },
      attempt,
      ack: settle(() => this.#release(held)),
      nak: (delayMs?: number, failure?: DeliveryFailure) =>
        settle(() =>
          this.#retry(group, message, attempt, held, [...failures, failedAttempt(attempt, failure)], delayMs),
        )(),
      term: (reason?: string) =>
        settle(() => {
          this.#release(held);
          this.#deadLetter(message, reason ?? 'terminated', attempt, failures);
        })(),
    };
    // Through a promise so a handler that throws synchronously counts as a rejection. A failed handler naks
    // in both modes (a no-op if it settled first); a manual handler that resolves may still settle later.
    Promise.resolve()
      .then(() => member.handler(delivery))
      .then(
        () => (member.manual ? undefined : delivery.ack()),
        () => delivery.nak(),
      )
      .catch(() => {}); // only a throwing backoff gets here
  }

  #retry(
    group: Group,
    message: BrokerMessage,
    attempt: number,
    held: number,
    failures: FailedAttempt[],
    delayMs?: number,
  ): void {
    if (attempt >= this.#maxAttempts) {
      this.#release(held);
      return this.#deadLetter(message, `failed ${attempt} attempts`, attempt, failures);
    }
    const redeliver = () => {
      // The group may have been forgotten and made anew since: look it up again by key.
      const target = this.#group(message.topic, group.key, group.queue);
      if (target) this.#enqueue(target, message, attempt + 1, held, failures);
      else this.#release(held);
    };
    const delay = delayMs ?? this.#backoff(attempt);
    if (!(delay > 0)) return redeliver();
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      redeliver();
    }, delay);
    this.#timers.add(timer);
  }

  #deadLetter(message: BrokerMessage, reason: string, attempts: number, failures: FailedAttempt[]): void {
    const headers = {
      ...message.headers,
      [deadLetterHeaders.topic]: message.topic,
      [deadLetterHeaders.reason]: reason,
      [deadLetterHeaders.attempts]: String(attempts),
      [deadLetterHeaders.errors]: JSON.stringify(failures),
    };
    void this.#publish(deadLetterTopic(message.topic), { headers, body: message.body }, true).catch(() => {});
  }
}

/** A broker kept in this process's memory; see {@link MemoryBroker} for its delivery semantics. */
export function createMemoryBroker(options?: MemoryBrokerOptions): MemoryBroker {
  return new MemoryBroker(options);
}
