import type {
  Consumer,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  NatsConnection,
  StreamConfig,
} from 'nats';
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
import { MicroError } from '../../core/errors.js';
import { newId } from '../../core/id.js';
import { checkPublish, checkSubscribe, headerRecord, natsBrokerError } from './broker.js';
import { lazyConnection, type LazyConnection, type NatsConnectionSource } from './connections.js';

export type JetStreamBrokerOptions = NatsConnectionSource & {
  /** Milliseconds a delivery may go unsettled before the server redelivers it (`working()` extends it). Default 30 000. */
  ackWait?: number;
  /** Deliveries a message gets before it is dead-lettered. Default 5. */
  maxDeliver?: number;
  /** Milliseconds before redelivering after a `nak()` without a delay. Default min(30 000, 1000·2^(attempt-1)). */
  backoff?: (attempt: number) => number;
  /** Messages a subscription pulls and handles at once. Default 1: members of a queue group share work evenly. */
  concurrency?: number;
  /** Milliseconds one pull request waits on the server for messages. Default 5000 (nats.js minimum 1000). */
  pullExpires?: number;
  /** Prefix of the streams the broker creates: `<prefix><topic>`. Default `MICRO_`. */
  streamPrefix?: string;
  /** More settings for the streams it creates (max_age, max_bytes, num_replicas…). File storage by default. */
  stream?: Partial<StreamConfig>;
};

interface Api {
  nc: NatsConnection;
  nats: typeof import('nats');
  js: JetStreamClient;
  jsm: JetStreamManager;
}
/** One subscription: `taken` counts toward `max`, `inflight` toward `concurrency`; `wake` ends a wait for room. */
interface Pull extends ReturnType<typeof checkSubscribe> {
  handler: DeliveryHandler;
  taken: number;
  inflight: number;
  left: boolean;
  messages?: ConsumerMessages;
  wake?: () => void;
  loop?: Promise<void>;
  /** A subscription without a queue has an ephemeral consumer, deleted once it has left and settled everything. */
  ephemeral?: { stream: string; name: string };
  /** How this process settled a stream sequence (or will): a redelivery of one it acked or terminated is not run. */
  outcomes: Map<number, Promise<Outcome>>;
}

/** How a delivery ended here: `again` (nak, or a manual handler left it unsettled) lets a redelivery run. */
type Outcome = 'ack' | 'term' | 'again';

/** Stream sequences remembered per consumer: enough to cover what a reconnect or an ack wait can send again. */
const rememberedOutcomes = 10_000;

const ID = 'jetstream-broker';
const defaultBackoff = (attempt: number): number => Math.min(30_000, 1000 * 2 ** (attempt - 1));

/** A stream or consumer name (no `.`, `*`, `>`, spaces): readable, with a hash when characters were replaced. */
export function jetStreamName(text: string): string {
  const safe = text.replace(/[^A-Za-z0-9_-]/g, '_');
  if (safe === text) return text;
  let hash = 0x811c9dc5;
  for (const char of text) hash = Math.imul(hash ^ char.codePointAt(0)!, 0x01000193) >>> 0;
  return `${safe}_${hash.toString(16).padStart(8, '0')}`;
}

/**
 * A broker on NATS JetStream: **at-least-once**. `publish` resolves once the server stored the message (PubAck).
 *
 * - Streams: a topic lives in the stream that already captures its subject (so an operator may make one stream over
 *   `orders.>`), else in `MICRO_<topic>` (file storage), created on first use.
 * - Consumers: with a queue, the durable pull consumer named after the queue (deliver all: what was stored before
 *   the group first subscribed is handled too); without, an ephemeral one (deliver new), deleted on unsubscribe.
 * - `max` is kept by never pulling more than is left: `max: 1` fetches exactly one message, then stops.
 * - Acks are explicit and confirmed; a handler running past half the ack wait reports progress; a delivery not
 *   settled within the ack wait (its process died) comes back. A redelivery of a message this consumer is still
 *   handling, or has acked or terminated (the server sent it before it recorded the ack, as it may around a
 *   restart), waits for that outcome and is settled the same way without running the handler again; in another
 *   process it would run: at-least-once is the promise. After `maxDeliver` deliveries, or on `term()`, the
 *   message goes to `dlq.<topic>` with the dead-letter headers and is terminated. The broker counts deliveries
 *   (no server-side limit), so even a last attempt that timed out is dead-lettered, never silently dropped.
 * @example
 * import { createJetStreamBroker } from 'micro-fn/nats';
 *
 * const broker = createJetStreamBroker({ address: 'nats://127.0.0.1:4222', ackWait: 10_000 });
 * await broker.subscribe('orders', async ({ message }) => console.log(message.id), { queue: 'billing' });
 * await broker.publish('orders', { body: new TextEncoder().encode('{"id":1}') });
 */
export class JetStreamBroker implements Broker {
  readonly #connection: LazyConnection;
  readonly #options: Required<Omit<JetStreamBrokerOptions, 'address' | 'name' | 'connection' | 'stream'>> & {
    stream: Partial<StreamConfig>;
  };
  readonly #streams = new Map<string, Promise<string>>();
  readonly #pulls = new Set<Pull>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  /** Called on every reconnect: publishes in flight send again (the server keeps one copy per message id). */
  readonly #reconnects = new Set<() => void>();
  #api: Promise<Api> | undefined;
  #closed = false;
  /** Stops #watch: the connection may be shared with other plugins and outlive this broker. */
  #unwatch: (() => void) | undefined;
  /** Resolved while connected; while reconnecting, a promise of the reconnect. */
  #online: Promise<void> = Promise.resolve();

  constructor(options: JetStreamBrokerOptions) {
    const {
      ackWait = 30_000,
      maxDeliver = 5,
      backoff = defaultBackoff,
      concurrency = 1,
      pullExpires = 5000,
      streamPrefix = 'MICRO_',
      stream = {},
    } = options ?? {};
    for (const [key, value, min] of [
      ['ackWait', ackWait, 1],
      ['maxDeliver', maxDeliver, 1],
      ['concurrency', concurrency, 1],
      ['pullExpires', pullExpires, 1000],
    ] as const) {
      if (!Number.isInteger(value) || value < min)
        throw new ConfigError(`${key} must be an integer >= ${min}; got ${String(value)}`);
    }
    if (typeof backoff !== 'function') throw new ConfigError('backoff must be a function (attempt) => milliseconds');
    if (!/^[\w-]*$/.test(streamPrefix))
      throw new ConfigError(`streamPrefix may hold letters, digits, "_" and "-" only; got "${streamPrefix}"`);
    this.#connection = lazyConnection(options, ID);
    this.#options = { ackWait, maxDeliver, backoff, concurrency, pullExpires, streamPrefix, stream };
  }

  /** Resolves once the server stored the message. A topic without a stream gets one. */
  async publish(topic: string, message: PublishMessage): Promise<void> {
    checkPublish(topic, message, ID);
    await this.#store(
      await this.#open(`cannot publish to ${topic}`),
      topic,
      { ...message.headers },
      message.body,
      newId(),
    );
  }

  async subscribe(topic: string, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    const { queue, max, manual } = checkSubscribe(topic, handler, options, ID);
    const { js, jsm, nats } = await this.#open(`cannot subscribe to ${topic}`);
    const stream = await this.#stream(topic);
    const pull: Pull = { handler, manual, max, taken: 0, inflight: 0, left: false, outcomes: new Map() };
    const config = {
      ack_policy: nats.AckPolicy.Explicit,
      ack_wait: nats.nanos(this.#options.ackWait),
      max_deliver: -1,
      filter_subject: topic,
    };
    try {
      let name = queue && jetStreamName(queue);
      if (name) {
        const durable = name;
        // A durable made with other settings (an older ackWait) is updated where it may be, or the reason is thrown.
        await jsm.consumers
          .add(stream, { ...config, durable_name: name, deliver_policy: nats.DeliverPolicy.All })
          .catch((err: unknown) =>
            jsm.consumers
              .update(stream, durable, { ack_wait: config.ack_wait, max_deliver: -1 })
              .catch(() => Promise.reject(err)),
          );
      } else {
        const inactive = nats.nanos(Math.max(60_000, 2 * this.#options.ackWait));
        name = (
          await jsm.consumers.add(stream, {
            ...config,
            deliver_policy: nats.DeliverPolicy.New,
            inactive_threshold: inactive,
          })
        ).name;
        pull.ephemeral = { stream, name };
      }
      const consumer = await js.consumers.get(stream, name);
      this.#pulls.add(pull);
      pull.loop = this.#pull(pull, consumer);
    } catch (err) {
      throw natsBrokerError(err, ID, `subscribe to ${topic} (stream ${stream}${queue ? `, queue ${queue}` : ''})`);
    }
    return { topic, unsubscribe: () => this.#leave(pull) };
  }

  /** Stops pulling, deletes idle ephemeral consumers and drains the connection if the broker opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timers.forEach(clearTimeout); // intervals too
    await Promise.allSettled([...this.#pulls].map((pull) => this.#leave(pull).then(() => pull.loop)));
    this.#unwatch?.();
    await this.#connection.close();
  }

  #open(what: string): Promise<Api> {
    if (this.#closed) return Promise.reject(new MicroError(ID, 503, `broker is closed: ${what}`));
    this.#api ??= (async () => {
      const nc = await this.#connection.get();
      const nats = await import('nats');
      const jsm = await nc
        .jetstreamManager()
        .catch((err: unknown) =>
          Promise.reject(natsBrokerError(err, ID, 'JetStream is not available (nats-server needs -js)')),
        );
      void this.#watch(nc);
      return { nc, nats, jsm, js: nc.jetstream() };
    })();
    this.#api.catch(() => (this.#api = undefined)); // the next call tries again
    return this.#api;
  }

  /** The stream that holds `topic`: one that already captures it, or `<prefix><topic>` made now. */
  #stream(topic: string): Promise<string> {
    let found = this.#streams.get(topic);
    if (found) return found;
    found = (async () => {
      const { jsm, nats } = await this.#open(`cannot reach the stream of ${topic}`);
      const existing = () => jsm.streams.find(topic).catch(() => undefined);
      const name = `${this.#options.streamPrefix}${jetStreamName(topic)}`;
      try {
        return (
          (await existing()) ??
          (await jsm.streams.add({ storage: nats.StorageType.File, ...this.#options.stream, name, subjects: [topic] }))
            .config.name
        );
      } catch (err) {
        const made = await existing(); // another process created it a moment ago
        if (made) return made;
        throw natsBrokerError(err, ID, `create stream ${name} for ${topic}`);
      }
    })();
    this.#streams.set(topic, found);
    found.catch(() => this.#streams.delete(topic));
    return found;
  }

  async #store(
    { js, nats }: Api,
    subject: string,
    headers: Record<string, string>,
    body: Uint8Array,
    id: string,
  ): Promise<void> {
    try {
      const h = nats.headers();
      for (const [key, value] of Object.entries(headers)) h.set(key, value);
      // Nats-Msg-Id: a publish sent again is stored once. A request lost with the connection would only time out
      // (5 s), so every reconnect while it is in flight sends it again; the first answer wins.
      const once = () => js.publish(subject, body, { msgID: id, headers: h });
      const send = () =>
        new Promise<unknown>((resolve, reject) => {
          let pending = 0;
          const attempt = () => {
            pending++;
            once().then(
              (ack) => (this.#reconnects.delete(attempt), resolve(ack)),
              (err: unknown) => void (--pending === 0 && (this.#reconnects.delete(attempt), reject(err))),
            );
          };
          this.#reconnects.add(attempt);
          attempt();
        });
      const cached = this.#streams.get(subject);
      await send().catch(async (err: { code?: string }) => {
        if (err?.code !== '503') throw err; // 503: no stream captures the subject (yet, or any more)
        if (this.#streams.get(subject) === cached) this.#streams.delete(subject);
        await this.#stream(subject);
        await send();
      });
    } catch (err) {
      throw natsBrokerError(err, ID, `publish to ${subject}`);
    }
  }

  /** Pulls no more than the free slots and what `max` leaves; after a failure (reconnecting) waits and pulls again. */
  async #pull(pull: Pull, consumer: Consumer): Promise<void> {
    for (let failures = 0; !pull.left;) {
      const room = Math.min(this.#options.concurrency - pull.inflight, pull.max - pull.taken);
      try {
        if (room <= 0) await new Promise<void>((resolve) => (pull.wake = resolve));
        else {
          await this.#online;
          if (pull.left) break;
          pull.messages = await consumer.fetch({ max_messages: room, expires: this.#options.pullExpires });
          for await (const msg of pull.messages) ((failures = 0), this.#deliver(pull, msg));
        }
      } catch {
        if (!pull.left)
          await new Promise<void>(
            (resolve) => ((pull.wake = resolve), setTimeout(resolve, Math.min(2000, 100 * 2 ** failures++))),
          );
      } finally {
        pull.messages = undefined;
      }
    }
  }

  /**
   * nats.js re-sends a fetch's pull request after a reconnect but closes the fetch on its first timer, leaving the
   * server a request nobody listens for (nats-server 2.9 then miscounts, and was seen redelivering acked messages).
   * So fetches end on a disconnect, and new ones wait for the reconnect.
   */
  async #watch(nc: NatsConnection): Promise<void> {
    let reconnected: (() => void) | undefined;
    // nats.js gives each status() iterator every event (several plugins may watch one connection); stop() ends it.
    const statuses = nc.status() as ReturnType<NatsConnection['status']> & { stop?: () => void };
    this.#unwatch = () => statuses.stop?.();
    if (this.#closed) this.#unwatch();
    for await (const status of statuses) {
      if (status.type === 'disconnect' && !reconnected) {
        this.#online = new Promise((resolve) => (reconnected = resolve));
        for (const pull of this.#pulls) pull.messages?.stop();
      } else if (status.type === 'reconnect') {
        reconnected = void reconnected?.();
        for (const resend of [...this.#reconnects]) resend();
      }
    }
    reconnected?.();
  }

  /** Idempotent. Stops pulling at once; an ephemeral consumer is deleted once its deliveries are settled. */
  async #leave(pull: Pull): Promise<void> {
    pull.left = true;
    pull.messages?.stop();
    pull.wake?.();
    this.#pulls.delete(pull);
    const { ephemeral } = pull;
    if (!ephemeral || pull.inflight > 0) return;
    pull.ephemeral = undefined; // if deleting fails, its inactivity threshold removes it
    await this.#api?.then(({ jsm }) => jsm.consumers.delete(ephemeral.stream, ephemeral.name)).catch(() => {});
  }

  #deliver(pull: Pull, msg: JsMsg): void {
    const attempt = msg.info.deliveryCount;
    const headers = headerRecord(msg.headers, (key) => /^nats-/i.test(key));
    const message: BrokerMessage = {
      id: msg.headers?.get('Nats-Msg-Id') || `${msg.info.stream}.${msg.seq}`,
      topic: msg.subject,
      headers,
      body: msg.data,
    };
    // First, even after leaving: a one-shot subscription that acked a message must not give its redelivery back.
    const earlier = pull.outcomes.get(msg.seq);
    if (earlier) return void this.#settleAgain(pull, msg, earlier);
    if (pull.left) return msg.nak(); // pulled as it left: give it back at once
    let outcome!: (value: Outcome) => void;
    pull.outcomes.set(msg.seq, new Promise<Outcome>((resolve) => (outcome = resolve)));
    if (pull.outcomes.size > rememberedOutcomes) pull.outcomes.delete(pull.outcomes.keys().next().value!);
    const { maxDeliver, backoff, ackWait } = this.#options;
    const deadLetter = async (reason: string, attempts: number, termReason?: string) => {
      const dead = {
        ...headers,
        [deadLetterHeaders.topic]: message.topic,
        [deadLetterHeaders.reason]: reason,
        [deadLetterHeaders.attempts]: String(attempts),
      };
      // Not stored: nak, so it comes back and is dead-lettered on that delivery.
      await this.#store(
        await this.#open('cannot dead-letter'),
        deadLetterTopic(message.topic),
        dead,
        message.body,
        message.id,
      ).catch((err: unknown) => {
        throw (msg.nak(backoff(attempt)), err);
      });
      msg.term(termReason);
    };
    // Its last allowed delivery was never settled (the process died): dead-letter it without running the handler.
    if (attempt > maxDeliver)
      return void deadLetter(`not settled within the ack wait on attempt ${maxDeliver}`, maxDeliver).then(
        () => outcome('term'),
        () => outcome('again'),
      );
    pull.inflight++;
    if (++pull.taken >= pull.max) void this.#leave(pull);
    const stopWorking = this.#working(msg);
    let settled = false;
    let released = false;
    // The slot frees on settling, or an ack wait after a manual handler returned unsettled (redelivered by then).
    const release = () =>
      void (
        released ||
        ((released = true),
        outcome('again'), // settled ones resolved it first
        pull.inflight--,
        pull.wake?.(),
        pull.left && pull.inflight === 0 && this.#leave(pull))
      );
    const settle = (then: () => Promise<void>, as: Outcome) => async () =>
      void (
        settled ||
        ((settled = true),
        stopWorking(),
        await then()
          .then(() => outcome(as))
          .finally(release))
      );
    const delivery: Delivery = {
      message,
      attempt,
      ack: settle(
        () =>
          msg.ackAck().then(
            () => {},
            (err: unknown) =>
              Promise.reject(natsBrokerError(err, ID, `ack of ${message.id} not confirmed; it may come again`)),
          ),
        'ack',
      ),
      nak: (delayMs?: number) =>
        settle(
          async () =>
            attempt >= maxDeliver
              ? deadLetter(`failed ${attempt} attempts`, attempt)
              : msg.nak(Math.max(0, delayMs ?? backoff(attempt))),
          attempt >= maxDeliver ? 'term' : 'again',
        )(),
      term: (reason?: string) => settle(() => deadLetter(reason ?? 'terminated', attempt, reason), 'term')(),
    };
    Promise.resolve()
      .then(() => pull.handler(delivery))
      .finally(stopWorking)
      .then(
        () => (pull.manual ? void (settled || this.#track(setTimeout(release, ackWait))) : delivery.ack()),
        () => delivery.nak(),
      )
      .catch(() => {}); // a failed ack or dead-letter: the server redelivers
  }

  /** Tracks a timer (or interval) for close() to clear; the function returned clears it now. */
  #track(t: ReturnType<typeof setTimeout>): () => void {
    this.#timers.add(t);
    return () => void (clearTimeout(t), this.#timers.delete(t));
  }

  /** Reports progress on `msg` every half ack wait (its delivery stays this consumer's) until the returned stop. */
  #working(msg: JsMsg): () => void {
    return this.#track(setInterval(() => msg.working(), Math.max(100, this.#options.ackWait / 2)));
  }

  /**
   * A redelivery of a sequence this consumer handled or is handling: kept alive while the first delivery runs, then
   * acked (or terminated) again if that one was, without running the handler; run as new if it was not.
   */
  async #settleAgain(pull: Pull, msg: JsMsg, earlier: Promise<Outcome>): Promise<void> {
    const outcome = await earlier.finally(this.#working(msg));
    if (outcome === 'ack') return void msg.ackAck().catch(() => {});
    if (outcome === 'term') return msg.term();
    if (pull.outcomes.get(msg.seq) === earlier) pull.outcomes.delete(msg.seq);
    this.#deliver(pull, msg);
  }
}

/** A broker on NATS JetStream (at-least-once); see {@link JetStreamBroker}. Connects on first use. */
export function createJetStreamBroker(options: JetStreamBrokerOptions): JetStreamBroker {
  return new JetStreamBroker(options);
}
