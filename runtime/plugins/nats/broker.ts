import type { Msg, MsgHdrs, NatsConnection, Subscription as NatsSubscription } from 'nats';
import { deadLetterHeaders, deadLetterTopic } from '../../core/broker.js';
import type {
  Broker,
  BrokerMessage,
  Delivery,
  DeliveryHandler,
  PublishMessage,
  SubscribeOptions,
  Subscription,
} from '../../core/broker.js';
import { ConfigError } from '../../core/config.js';
import { MicroError, isMicroError } from '../../core/errors.js';
import { newId } from '../../core/id.js';
import { lazyConnection, type LazyConnection, type NatsConnectionSource } from './connections.js';

export type NatsBrokerOptions = NatsConnectionSource & {
  /** Deliveries a message gets before it is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Milliseconds before re-publishing after a `nak()` without a delay. Default min(1000, 20·2^(attempt-1)). */
  backoff?: (attempt: number) => number;
};

/** Headers the broker sets itself; a delivery's `message.headers` never shows them. */
export const natsBrokerHeaders = { id: 'Micro-Message-Id', attempt: 'Micro-Attempt', topic: 'Micro-Topic' } as const;
const INTERNAL = new Set(Object.values(natsBrokerHeaders).map((h) => h.toLowerCase()));
const defaultBackoff = (attempt: number): number => Math.min(1000, 20 * 2 ** (attempt - 1));
const TRANSIENT = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_DRAINING',
  'CONNECTION_REFUSED',
  'DISCONNECT',
  'TIMEOUT',
  '503',
  'REQUEST_ERROR',
  'SUB_CLOSED',
]);

/** A nats.js failure as a MicroError (the original kept as `cause`): connection trouble is a retryable 503. */
export function natsBrokerError(err: unknown, id: string, doing: string): MicroError {
  if (isMicroError(err)) return err;
  const e = err as { code?: string; message?: string; api_error?: { code: number; description: string } } | undefined;
  const detail = `${doing}: ${e?.api_error?.description ?? e?.message ?? String(err)}`;
  const code =
    e?.code === 'MAX_PAYLOAD_EXCEEDED'
      ? 413
      : e?.code?.startsWith('BAD_')
        ? 400
        : TRANSIENT.has(e?.code ?? '')
          ? 503
          : (e?.api_error?.code ?? 500);
  return new MicroError(id, code, detail, { cause: err });
}

/** Refuses a topic that is not a NATS subject (nats.js would send `a b` as subject `a` with reply `b`). */
function checkTopic(topic: string, id: string, wildcards: boolean): void {
  const tokens = typeof topic === 'string' ? topic.split('.') : [];
  const bad =
    tokens.length === 0 ||
    tokens.some(
      (t, i) =>
        t === '' ||
        /\s/.test(t) ||
        (/[*>]/.test(t) && (!wildcards || t.length > 1 || (t === '>' && i < tokens.length - 1))),
    );
  if (bad)
    throw new MicroError(
      id,
      400,
      `a topic is a NATS subject: dot-separated tokens without spaces${wildcards ? ', "*" or a last ">" as wildcards' : ', no wildcards'}; got ${JSON.stringify(topic)}`,
    );
}

/** Checks `publish` arguments the way the memory broker does (TypeError), plus the topic (400). */
export function checkPublish(topic: string, message: PublishMessage, id: string): void {
  if (!(message?.body instanceof Uint8Array)) throw new TypeError('a published message needs a Uint8Array body');
  checkTopic(topic, id, false);
}

/** Checks `subscribe` arguments; returns the options with their defaults. */
export function checkSubscribe(
  topic: string,
  handler: DeliveryHandler,
  options: SubscribeOptions,
  id: string,
): { queue?: string; max: number; manual: boolean } {
  if (typeof handler !== 'function') throw new TypeError('subscribe needs a handler function');
  const { queue, max = Infinity, ack = 'auto' } = options;
  if (max !== Infinity && (!Number.isInteger(max) || max < 1))
    throw new TypeError(`max must be an integer >= 1; got ${String(max)}`);
  if (ack !== 'auto' && ack !== 'manual') throw new TypeError(`ack must be 'auto' or 'manual'; got ${String(ack)}`);
  checkTopic(topic, id, true);
  return { queue: queue || undefined, max, manual: ack === 'manual' };
}

/** A message's headers as a record (repeated values joined with ","), without the keys `skip` matches. */
export function headerRecord(h: MsgHdrs | undefined, skip: (key: string) => boolean): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, values] of h ?? []) if (!skip(key)) headers[key] = values.join(',');
  return headers;
}

interface Member extends ReturnType<typeof checkSubscribe> {
  nats: NatsSubscription[];
  handler: DeliveryHandler;
  taken: number;
  left: boolean;
  /** Where nakked and refused messages go: the queue group's own subject, or this subscription's alone. */
  retry: (topic: string) => string;
}

/**
 * A broker on NATS core: **at-most-once**. Nothing is stored: a message published while nobody subscribed is
 * gone, and so is one in flight when a subscriber dies.
 *
 * `max` is sent to the server (auto-unsubscribe), so a one-shot function (`max: 1`) is never sent a second
 * message. Core NATS cannot redeliver, so `nak(delay)` re-publishes the message (same id, next attempt) after the
 * delay to a retry subject only its own queue group (or, without a queue, only its own subscription) listens
 * on: `_MICRO.retry.q.<queue>.<topic>` or `_MICRO.retry.s.<id>`. Other subscribers of the topic never see it
 * twice; a refused message goes back to the queue group. A retry nobody listens for is lost, and so is one still
 * waiting at `close()`. Past `maxAttempts`, or on `term()`, it is published to `dlq.<topic>` with the dead-letter
 * headers. `ack()` is a no-op.
 * @example
 * import { createNatsBroker } from 'micro-fn/nats';
 *
 * const broker = createNatsBroker({ address: 'nats://127.0.0.1:4222' });
 * await broker.subscribe('orders', ({ message }) => console.log(message.id), { queue: 'billing' });
 * await broker.publish('orders', { body: new TextEncoder().encode('{"id":1}') });
 * await broker.close();
 */
export class NatsBroker implements Broker {
  readonly #connection: LazyConnection;
  readonly #maxAttempts: number;
  readonly #backoff: (attempt: number) => number;
  readonly #members = new Set<Member>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #headers: (() => MsgHdrs) | undefined;
  #closed = false;

  constructor(options: NatsBrokerOptions) {
    const { maxAttempts = 5, backoff = defaultBackoff } = options ?? {};
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
      throw new ConfigError(`maxAttempts must be an integer >= 1; got ${String(maxAttempts)}`);
    if (typeof backoff !== 'function') throw new ConfigError('backoff must be a function (attempt) => milliseconds');
    this.#connection = lazyConnection(options, 'nats-broker');
    this.#maxAttempts = maxAttempts;
    this.#backoff = backoff;
  }

  /** Resolves once the server has the message (a flush), not once anyone handled it. */
  async publish(topic: string, message: PublishMessage): Promise<void> {
    checkPublish(topic, message, 'nats-broker');
    const nc = await this.#open(`cannot publish to ${topic}`);
    this.#send(nc, topic, topic, { ...message.headers }, message.body, newId(), 1);
    await nc
      .flush()
      .catch((err: unknown) => Promise.reject(natsBrokerError(err, 'nats-broker', `publish to ${topic}`)));
  }

  async subscribe(topic: string, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    const { queue, max, manual } = checkSubscribe(topic, handler, options, 'nats-broker');
    const nc = await this.#open(`cannot subscribe to ${topic}`);
    // A queue name (a service name may hold dots) becomes one literal subject token.
    const prefix = queue
      ? `_MICRO.retry.q.${encodeURIComponent(queue).replace(/[.*]/g, (c) => `%${c.charCodeAt(0).toString(16)}`)}`
      : `_MICRO.retry.s.${newId()}`;
    const retry = (subject: string) => (queue ? `${prefix}.${subject}` : prefix);
    const member: Member = { nats: [], handler, manual, max, taken: 0, left: false, retry, queue };
    const callback = (err: Error | null, msg: Msg) => void (err ? undefined : this.#arrive(nc, member, msg));
    try {
      member.nats.push(nc.subscribe(topic, { queue, max: max === Infinity ? undefined : max, callback }));
      member.nats.push(nc.subscribe(retry(topic), { queue, callback })); // a wildcard topic gives a wildcard retry subject
      await nc.flush(); // the server knows the interest before subscribe resolves
    } catch (err) {
      this.#leave(member);
      throw natsBrokerError(err, 'nats-broker', `subscribe to ${topic}`);
    }
    this.#members.add(member);
    return { topic, unsubscribe: async () => this.#leave(member) };
  }

  /** Unsubscribes everything, cancels pending re-publishes and drains the connection if the broker opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timers.forEach(clearTimeout);
    for (const member of this.#members) this.#leave(member);
    await this.#connection.close();
  }

  async #open(what: string): Promise<NatsConnection> {
    if (this.#closed) throw new MicroError('nats-broker', 503, `broker is closed: ${what}`);
    const nc = await this.#connection.get();
    this.#headers ??= (await import('nats')).headers;
    return nc;
  }

  #leave(member: Member): void {
    if (member.left) return;
    member.left = true;
    this.#members.delete(member);
    for (const sub of member.nats) if (!sub.isClosed()) sub.unsubscribe();
  }

  /** Publishes with the broker's headers; `quiet` drops a failure (at-most-once), never throwing into nats.js's callback. */
  #send(
    nc: NatsConnection,
    subject: string,
    topic: string,
    headers: Record<string, string>,
    body: Uint8Array,
    id: string,
    attempt: number,
    quiet = false,
  ): void {
    try {
      const h = this.#headers!();
      const own = {
        [natsBrokerHeaders.id]: id,
        [natsBrokerHeaders.attempt]: String(attempt),
        [natsBrokerHeaders.topic]: topic,
      };
      for (const [key, value] of Object.entries({ ...headers, ...own })) h.set(key, value);
      nc.publish(subject, body, { headers: h });
    } catch (err) {
      if (!quiet) throw natsBrokerError(err, 'nats-broker', `publish to ${subject}`);
    }
  }

  #arrive(nc: NatsConnection, member: Member, msg: Msg): void {
    const h = msg.headers;
    const headers = headerRecord(h, (key) => INTERNAL.has(key.toLowerCase()));
    const message: BrokerMessage = {
      id: h?.get(natsBrokerHeaders.id) || newId(),
      topic: h?.get(natsBrokerHeaders.topic) || msg.subject,
      headers,
      body: msg.data,
    };
    const attempt = Number(h?.get(natsBrokerHeaders.attempt)) || 1;
    // A retry racing the server-side max, or arriving after unsubscribe: give it back to the group unchanged.
    if (member.left || member.taken >= member.max) {
      if (member.queue && !this.#closed)
        this.#send(nc, member.retry(message.topic), message.topic, headers, message.body, message.id, attempt, true);
      return;
    }
    if (++member.taken >= member.max) this.#leave(member);
    let settled = false;
    const settle = (then: () => void) => async () => {
      if (settled || this.#closed) return;
      settled = true;
      then();
    };
    const deadLetter = (reason: string) => {
      const dead = {
        ...headers,
        [deadLetterHeaders.topic]: message.topic,
        [deadLetterHeaders.reason]: reason,
        [deadLetterHeaders.attempts]: String(attempt),
      };
      this.#send(
        nc,
        deadLetterTopic(message.topic),
        deadLetterTopic(message.topic),
        dead,
        message.body,
        message.id,
        1,
        true,
      );
    };
    const delivery: Delivery = {
      message,
      attempt,
      ack: settle(() => {}),
      nak: (delayMs?: number) =>
        settle(() => {
          if (attempt >= this.#maxAttempts) return deadLetter(`failed ${attempt} attempts`);
          const timer = setTimeout(
            () => {
              this.#timers.delete(timer);
              this.#send(
                nc,
                member.retry(message.topic),
                message.topic,
                headers,
                message.body,
                message.id,
                attempt + 1,
                true,
              );
            },
            Math.max(0, delayMs ?? this.#backoff(attempt)),
          );
          this.#timers.add(timer);
        })(),
      term: (reason?: string) => settle(() => deadLetter(reason ?? 'terminated'))(),
    };
    Promise.resolve()
      .then(() => member.handler(delivery))
      .then(
        () => (member.manual ? undefined : delivery.ack()),
        () => delivery.nak(),
      )
      .catch(() => {}); // only a throwing backoff gets here
  }
}

/** A broker on NATS core (at-most-once); see {@link NatsBroker}. Connects on first use. */
export function createNatsBroker(options: NatsBrokerOptions): NatsBroker {
  return new NatsBroker(options);
}
