/**
 * The broker `micro-fn serve` hosts: messages kept on disk in an embedded store (serve/store), not in serve's
 * memory, so a crash of serve loses none and a backlog costs serve no memory.
 *
 * - `publish` resolves once the message is durable: committed and flushed to disk (see serve/store/store.ts). A
 *   settle (ack, nak, term) resolves once committed: a crash of the machine may undo it, and the message comes again.
 * - At-least-once: each message is handed to one member of every queue group of its topic, and to every plain
 *   subscription, and stays on disk until acked. A delivery in progress when serve dies comes again after it
 *   starts (as the same attempt: a crash of serve is not the handler's failure).
 * - Queue groups are durable: a group is known from its first subscription on, across restarts, and collects every
 *   message of its topic while it has members and for `retention` after its last member left; then it is forgotten
 *   with what it still holds. A message whose topic has no such group is kept for `retention` and goes to the
 *   first queue group that subscribes. Plain subscriptions (no queue) get what is published while they exist.
 * - First deliveries go out in publish order, per group; a redelivery waits behind what was waiting.
 * - A nakked message comes back after a backoff; past `maxAttempts`, or on `term()`, it is a dead letter: kept
 *   (with every failed attempt's code, detail and time) until replayed, and copied to `dlq.<topic>` for whoever
 *   subscribes to that.
 * - Bounded: past `maxBytes` of messages kept (waiting, in flight, dead letters), publish gets a retryable 503.
 * - A subscription holds at most `prefetch` unsettled deliveries; the rest wait on disk. Memory holds only an
 *   index: per message its sequence number, size and references; bodies are read from disk when delivered.
 */
import { join } from 'node:path';
import {
  deadLetterHeaders,
  deadLetterTopic,
  failedAttempt,
  type Broker,
  type Delivery,
  type DeliveryFailure,
  type DeliveryHandler,
  type FailedAttempt,
  type PublishMessage,
  type SubscribeOptions,
  type Subscription,
} from '../../runtime/core/broker.js';
import { MicroError, isMicroError } from '../../runtime/core/errors.js';
import { newId } from '../../runtime/core/id.js';
import type { DeadLetter } from '../../runtime/plugins/local/protocol.js';
import type { DeadLetterBox } from '../dead-letters.js';
import { openOwnStore, type Database, type Store } from '../store/store.js';
import { Fifo } from './fifo.js';
import {
  KEPT,
  plainQueue,
  queueProblem,
  sizeOf,
  type DeadKey,
  type DeadRecord,
  type GroupKey,
  type GroupRecord,
  type QueueEntry,
  type QueueKey,
  type StoredMessage,
} from './records.js';

export interface DurableBrokerOptions {
  /** MICRO_FN_HOME: the store is `store/broker` under it (`broker-2`, … while another serve holds that one). */
  home: string;
  /** Deliveries a message gets before it is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** Milliseconds before redelivering after a nak without a delay; `attempt` is the one that failed. Default as MemoryBroker. */
  backoff?: (attempt: number) => number;
  /** Bytes of messages kept at most (waiting, in flight, dead letters); past it publish gets a retryable 503. Default 1 GiB. */
  maxBytes?: number;
  /** Milliseconds a message waits for a first queue group, and a group without members keeps collecting. Default 24 h. */
  retention?: number;
  /** Unsettled deliveries a subscription holds at once. Default 64. */
  prefetch?: number;
  /** Where a failure to write the store is said (once per kind). Default: serve's stderr. */
  report?: (line: string) => void;
}

export const DEFAULT_BROKER_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_RETENTION = 24 * 60 * 60 * 1000;

const defaultBackoff = (attempt: number): number => Math.min(1000, 20 * 2 ** (attempt - 1));
const ID = 'micro-fn';

interface Meta {
  /** Queue entries (of groups in memory) and dead letters that refer to the message. */
  refs: number;
  size: number;
  at: number;
}

interface Member {
  handler: DeliveryHandler;
  manual: boolean;
  max: number;
  taken: number;
  /** Deliveries handed over and not settled. */
  holding: number;
}

interface Group {
  topic: string;
  queue: string;
  /** Written to the store (a queue group, or the messages kept for one); plain subscriptions are not. */
  durable: boolean;
  members: Member[];
  ready: Fifo;
  /** Messages whose next delivery is not the first: its attempt and the failures so far. */
  retries: Map<number, { attempt: number; failures: FailedAttempt[] }>;
  /** Deliveries handed over and not settled, and redeliveries waiting for their backoff. */
  busy: number;
  next: number;
  scheduled: boolean;
  /** When its last member left (ms); 0 while it has members. */
  left: number;
  /** Forgotten: what still comes back to it is dropped. */
  gone: boolean;
}

/**
 * A durable broker on the embedded store under `options.home`; see the module's comment for its semantics.
 *
 * @example
 * import { openDurableBroker } from './serve/broker/durable-broker.js';
 *
 * const broker = await openDurableBroker({ home: '/tmp/home', retention: 60_000 });
 * await broker.publish('orders', { body: new TextEncoder().encode('{"id":1}') }); // kept: no group yet
 * await broker.subscribe('orders', async ({ message }) => console.log(message.id), { queue: 'billing' }); // gets it
 * await broker.close();
 */
export async function openDurableBroker(options: DurableBrokerOptions): Promise<DurableBroker> {
  const store = await openOwnStore(join(options.home, 'store'), 'broker');
  try {
    return new DurableBroker(store, options);
  } catch (err) {
    await store.close();
    throw err;
  }
}

export class DurableBroker implements Broker {
  readonly #store: Store;
  readonly #messages: Database<StoredMessage, number>;
  readonly #queue: Database<QueueEntry, QueueKey>;
  readonly #groups: Database<GroupRecord, GroupKey>;
  readonly #dead: Database<DeadRecord, DeadKey>;
  readonly #maxAttempts: number;
  readonly #backoff: (attempt: number) => number;
  readonly #maxBytes: number;
  readonly #retention: number;
  readonly #prefetch: number;
  readonly #report: (line: string) => void;
  readonly #reported = new Set<string>();
  /** topic -> queue -> group */
  readonly #topics = new Map<string, Map<string, Group>>();
  readonly #meta = new Map<number, Meta>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #sweeper: ReturnType<typeof setInterval>;
  /** When this broker opened: time serve was not running does not count against the retention. */
  readonly #openedAt = Date.now();
  #bytes = 0;
  /** Bytes of dead letters (part of #bytes). */
  #deadBytes = 0;
  #seq = 1;
  /** Every message up to this one is durable: it may be handed out. */
  #durable = 0;
  #plain = 0;
  #lastWrite: Promise<unknown> = Promise.resolve();
  #closed = false;
  #closing: Promise<void> | undefined;

  /** Use openDurableBroker. Reads the index of what the store holds. */
  constructor(store: Store, options: DurableBrokerOptions) {
    const { maxAttempts = 5, backoff = defaultBackoff, maxBytes = DEFAULT_BROKER_BYTES } = options;
    const { retention = DEFAULT_RETENTION, prefetch = 64 } = options;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
      throw new TypeError(`maxAttempts must be an integer >= 1; got ${String(maxAttempts)}`);
    if (typeof backoff !== 'function') throw new TypeError('backoff must be a function (attempt) => milliseconds');
    if (!(maxBytes > 0)) throw new TypeError(`maxBytes must be a positive number of bytes; got ${String(maxBytes)}`);
    if (!(retention > 0)) throw new TypeError(`retention must be a positive number of ms; got ${String(retention)}`);
    if (!Number.isInteger(prefetch) || prefetch < 1)
      throw new TypeError(`prefetch must be an integer >= 1; got ${String(prefetch)}`);
    this.#store = store;
    this.#messages = store.database('broker.messages');
    this.#queue = store.database('broker.queue');
    this.#groups = store.database('broker.groups');
    this.#dead = store.database('broker.dead');
    this.#maxAttempts = maxAttempts;
    this.#backoff = backoff;
    this.#maxBytes = maxBytes;
    this.#retention = retention;
    this.#prefetch = prefetch;
    this.#report = options.report ?? ((line) => void process.stderr.write(`[micro-fn serve] ${line}\n`));
    this.#load();
    this.#sweeper = setInterval(() => this.#expire(), Math.min(60_000, Math.max(10, retention / 4)));
    this.#sweeper.unref();
  }

  /** Where the messages are kept. */
  get path(): string {
    return this.#store.path;
  }

  /** Bytes of messages kept now (counted against `maxBytes`). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Messages kept now: waiting, in flight or dead-lettered. */
  get messages(): number {
    return this.#meta.size;
  }

  /**
   * What it holds, for `micro-fn ps` (`Runtime.Stats`): per topic and queue group the messages waiting for delivery
   * and those handed out or waiting for a redelivery's backoff (`(kept)`: kept for a group not there yet; plain
   * subscriptions are not listed), and the dead letters per topic (read from the store: one pass over them).
   */
  stats(): {
    topics: { topic: string; group: string; waiting: number; inflight: number }[];
    deadLetters: { topic: string; count: number }[];
    messages: number;
    bytes: number;
  } {
    const topics: { topic: string; group: string; waiting: number; inflight: number }[] = [];
    for (const [topic, groups] of this.#topics)
      for (const group of groups.values())
        if (group.durable && !group.gone)
          topics.push({
            topic,
            group: group.queue === KEPT ? '(kept)' : group.queue,
            waiting: group.ready.length,
            inflight: group.busy,
          });
    const dead = new Map<string, number>();
    if (!this.#closed) for (const key of this.#dead.getKeys()) dead.set(key[0], (dead.get(key[0]) ?? 0) + 1);
    return {
      topics,
      deadLetters: [...dead].map(([topic, count]) => ({ topic, count })),
      messages: this.#meta.size,
      bytes: this.#bytes,
    };
  }

  /**
   * Resolves once the message is durable. Rejects with a 503 after `close()`, a retryable 503 when the messages
   * kept would pass `maxBytes`, and a 503 when the store cannot write it (nothing of it is kept then).
   */
  async publish(topic: string, message: PublishMessage): Promise<void> {
    if (this.#closed) throw new MicroError(ID, 503, `the broker is closed: cannot publish to ${topic}`);
    if (!(message?.body instanceof Uint8Array)) throw new TypeError('a published message needs a Uint8Array body');
    const headers = { ...message.headers };
    const size = sizeOf(topic, headers, message.body);
    if (this.#bytes + size > this.#maxBytes)
      throw new MicroError(
        ID,
        503,
        `serve's broker keeps ${this.#bytes} bytes of messages, and ${size} more would pass its limit of ${this.#maxBytes} (serve --broker-limit): publish again once subscribers catch up${this.#deadBytesHint()}`,
        { retryable: true },
      );
    await this.#put(topic, headers, message.body, size, this.#recipients(topic, true));
  }

  /** Stores a message for `groups` and hands it out once durable. */
  async #put(
    topic: string,
    headers: Record<string, string>,
    body: Uint8Array,
    size: number,
    groups: Group[],
  ): Promise<void> {
    if (groups.length === 0) return;
    const seq = this.#seq++;
    const at = Date.now();
    this.#meta.set(seq, { refs: groups.length, size, at });
    this.#bytes += size;
    const write = this.#messages.put(seq, { id: newId(), topic, headers, body, at });
    for (const group of groups) {
      if (group.durable) this.#queue.put([topic, group.queue, seq], { size, at, attempt: 1 });
      group.ready.push(seq);
    }
    try {
      await this.#written(write);
    } catch (err) {
      // Not kept: the groups skip it (it has no index entry any more).
      if (this.#meta.delete(seq)) this.#bytes -= size;
      throw new MicroError(ID, 503, `serve's broker could not store the message: ${(err as Error).message}`, {
        retryable: true,
      });
    }
    if (seq > this.#durable) this.#durable = seq;
    for (const group of groups) this.#schedule(group);
  }

  async subscribe(topic: string, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#closed) throw new MicroError(ID, 503, `the broker is closed: cannot subscribe to ${topic}`);
    if (typeof handler !== 'function') throw new TypeError('subscribe needs a handler function');
    const { queue, max = Infinity, ack = 'auto' } = options;
    if (max !== Infinity && (!Number.isInteger(max) || max < 1))
      throw new TypeError(`max must be an integer >= 1; got ${String(max)}`);
    if (ack !== 'auto' && ack !== 'manual') throw new TypeError(`ack must be 'auto' or 'manual'; got ${String(ack)}`);
    const problem = queue ? queueProblem(queue) : undefined;
    if (problem) throw new MicroError(ID, 400, problem);
    const member: Member = { handler, manual: ack === 'manual', max, taken: 0, holding: 0 };
    const group = queue ? this.#queueGroup(topic, queue) : this.#group(topic, plainQueue(++this.#plain), false);
    group.members.push(member);
    this.#schedule(group);
    return { topic, unsubscribe: async () => this.#leave(group, member) };
  }

  /** The queue group `queue` of `topic`, joined: known from now on, and first to take what was kept for one. */
  #queueGroup(topic: string, queue: string): Group {
    const group = this.#group(topic, queue, true);
    if (group.members.length > 0) return group;
    group.left = 0;
    this.#write(this.#groups.put([topic, queue], { left: 0 }));
    const kept = this.#topics.get(topic)?.get(KEPT);
    if (kept && kept.ready.length > 0) {
      const moved: number[] = [];
      for (const seq of kept.ready) {
        const meta = this.#meta.get(seq);
        if (!meta) continue;
        this.#queue.remove([topic, KEPT, seq]);
        this.#write(this.#queue.put([topic, queue, seq], { size: meta.size, at: meta.at, attempt: 1 }));
        moved.push(seq);
      }
      kept.ready.clear();
      this.#forget(kept);
      group.ready.merge(moved);
    }
    return group;
  }

  /** Cancels redeliveries, waits for the writes under way and closes the store. Safe to call twice. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closed = true;
      clearInterval(this.#sweeper);
      for (const timer of this.#timers) clearTimeout(timer);
      this.#timers.clear();
      this.#closing = this.#lastWrite.then(
        () => this.#store.close(),
        () => this.#store.close(),
      );
    }
    return this.#closing;
  }

  /** The dead letters this broker keeps, for `micro-fn dlq`; a replay hands them back itself, in one transaction. */
  readonly deadLetters: DeadLetterBox & { replay(topic: string): Promise<number> } = {
    list: async (topic) => {
      const out: DeadLetter[] = [];
      for (const { key, value } of this.#deadOf(topic)) {
        const stored = this.#messages.get(key[1]);
        if (!stored) continue;
        out.push({
          id: stored.id,
          topic,
          headers: {
            ...stored.headers,
            [deadLetterHeaders.topic]: topic,
            [deadLetterHeaders.reason]: value.reason,
            [deadLetterHeaders.attempts]: String(value.attempts),
          },
          body: new TextDecoder().decode(stored.body),
          at: value.at,
          attempts: value.failures,
        });
      }
      return out;
    },
    replay: async (topic) => {
      if (this.#closed) throw new MicroError(ID, 503, `the broker is closed: cannot replay ${topic}`);
      // One transaction (writes of one event-loop turn): every dead letter goes back, or none does.
      const handed: [Group, number][] = [];
      let last: Promise<unknown> | undefined;
      for (const { key } of this.#deadOf(topic)) {
        const [, seq, queue] = key;
        const meta = this.#meta.get(seq);
        if (!meta) continue;
        // Back to the group that failed it (the others handled it), else to whoever takes the topic now.
        const own = this.#topics.get(topic)?.get(queue);
        const groups = own && !own.gone && own.durable ? [own] : this.#recipients(topic, true);
        meta.at = Date.now();
        meta.refs += groups.length - 1; // the dead letter's reference becomes the groups'
        this.#deadBytes -= meta.size;
        last = this.#dead.remove(key);
        for (const group of groups) {
          if (group.durable)
            last = this.#queue.put([topic, group.queue, seq], { size: meta.size, at: meta.at, attempt: 1 });
          handed.push([group, seq]);
        }
      }
      if (last) await this.#written(last);
      for (const [group, seq] of handed) group.ready.push(seq);
      for (const group of new Set(handed.map(([g]) => g))) this.#schedule(group);
      return handed.length;
    },
  };

  /** The dead letters of `topic`: keys [topic, seq, queue] sort after [topic], together (their separator, 0, sorts first). */
  *#deadOf(topic: string): Generator<{ key: DeadKey; value: DeadRecord }> {
    for (const entry of this.#dead.getRange({ start: [topic] as unknown as DeadKey })) {
      if (entry.key[0] !== topic) return;
      yield entry;
    }
  }

  // --- groups

  #group(topic: string, queue: string, durable: boolean): Group {
    let groups = this.#topics.get(topic);
    if (!groups) this.#topics.set(topic, (groups = new Map()));
    let group = groups.get(queue);
    if (!group || group.gone) {
      group = {
        topic,
        queue,
        durable,
        members: [],
        ready: new Fifo(),
        retries: new Map(),
        busy: 0,
        next: 0,
        scheduled: false,
        left: Date.now(),
        gone: false,
      };
      groups.set(queue, group);
    }
    return group;
  }

  /**
   * Who gets a message published on `topic` now: every queue group with members or without them for less than
   * the retention, and every plain subscription; with no such queue group, the topic's kept messages (`keep`).
   */
  #recipients(topic: string, keep: boolean): Group[] {
    const out: Group[] = [];
    let queued = false;
    const cutoff = Date.now() - this.#retention;
    for (const group of this.#topics.get(topic)?.values() ?? []) {
      if (group.queue === KEPT) continue;
      if (!group.durable) {
        if (group.members.length > 0) out.push(group);
      } else if (group.members.length > 0 || group.left > cutoff) {
        out.push(group);
        queued = true;
      }
    }
    if (!queued && keep) out.push(this.#group(topic, KEPT, true));
    return out;
  }

  #leave(group: Group, member: Member): void {
    const index = group.members.indexOf(member);
    if (index < 0) return;
    group.members.splice(index, 1);
    if (group.members.length > 0 || this.#closed) return;
    group.left = Date.now();
    // A queue group stays known (and collects) for the retention; a plain subscription goes with what it held.
    if (group.durable) this.#write(this.#groups.put([group.topic, group.queue], { left: group.left }));
    else this.#forget(group);
  }

  /** Drops `group` and the messages it holds that nobody else refers to. */
  #forget(group: Group): void {
    group.gone = true;
    const groups = this.#topics.get(group.topic);
    if (groups?.get(group.queue) === group) groups.delete(group.queue);
    if (groups?.size === 0) this.#topics.delete(group.topic);
    for (const seq of group.ready) {
      if (group.durable) this.#write(this.#queue.remove([group.topic, group.queue, seq]));
      this.#unref(seq);
    }
    group.ready.clear();
    group.retries.clear();
    if (group.durable && group.queue !== KEPT) this.#write(this.#groups.remove([group.topic, group.queue]));
  }

  // --- delivery

  /** Dispatches in a microtask: never inside the caller's stack, and members are picked at dispatch time. */
  #schedule(group: Group): void {
    if (group.scheduled || group.gone || group.members.length === 0) return;
    group.scheduled = true;
    queueMicrotask(() => {
      group.scheduled = false;
      this.#dispatch(group);
    });
  }

  #dispatch(group: Group): void {
    while (!this.#closed && !group.gone && group.ready.length > 0) {
      const seq = group.ready.peek()!;
      if (!this.#meta.has(seq)) {
        group.ready.shift(); // not stored after all, or dropped
        continue;
      }
      if (seq > this.#durable) return; // scheduled again once it is durable
      const member = this.#pick(group);
      if (!member) return;
      group.ready.shift();
      member.holding++;
      group.busy++;
      // Leave the group the moment the last allowed message is handed over, so it is never offered another.
      if (++member.taken >= member.max) this.#leave(group, member);
      this.#deliver(group, member, seq);
    }
  }

  /** The next member, round-robin, that may take one more. */
  #pick(group: Group): Member | undefined {
    const { members } = group;
    for (let i = 0; i < members.length; i++) {
      const member = members[group.next++ % members.length]!;
      if (member.holding < this.#prefetch && member.taken < member.max) return member;
    }
    return undefined;
  }

  #deliver(group: Group, member: Member, seq: number): void {
    const stored = this.#messages.get(seq);
    const retry = group.retries.get(seq);
    const attempt = retry?.attempt ?? 1;
    let settled = false;
    const settle =
      <A extends unknown[]>(then: (...args: A) => Promise<void> | void) =>
      async (...args: A): Promise<void> => {
        if (settled) return;
        settled = true;
        member.holding--;
        group.busy--;
        if (this.#closed) return; // not written: it comes again after serve starts
        this.#schedule(group);
        await then(...args);
      };
    if (!stored) {
      this.#say('missing', `message ${seq} of ${group.topic} is in the index but not in the store; dropped`);
      return void settle(() => this.#ack(group, seq))();
    }
    const delivery: Delivery = {
      message: { id: stored.id, topic: stored.topic, headers: { ...stored.headers }, body: bytes(stored.body) },
      attempt,
      ack: settle(() => this.#ack(group, seq)),
      nak: settle((delayMs?: number, failure?: DeliveryFailure) =>
        this.#nak(group, seq, attempt, [...(retry?.failures ?? []), failedAttempt(attempt, failure)], delayMs),
      ),
      term: settle((reason?: string) =>
        this.#deadLetter(group, seq, stored, reason ?? 'terminated', attempt, retry?.failures ?? []),
      ),
    };
    // Through a promise so a handler that throws synchronously counts as a rejection. A failed handler naks in
    // both modes (a no-op if it settled first).
    Promise.resolve()
      .then(() => member.handler(delivery))
      .then(
        () => (member.manual ? undefined : delivery.ack()),
        (err: unknown) => delivery.nak(undefined, failureOf(err)),
      )
      .catch((err: unknown) => this.#say('settle', `settling a delivery failed: ${(err as Error)?.message ?? err}`));
  }

  async #ack(group: Group, seq: number): Promise<void> {
    group.retries.delete(seq);
    let write: Promise<unknown> | undefined;
    if (group.durable && !group.gone) write = this.#queue.remove([group.topic, group.queue, seq]);
    write = this.#unref(seq) ?? write;
    if (write) await this.#committed(write);
  }

  async #nak(group: Group, seq: number, attempt: number, failures: FailedAttempt[], delayMs?: number): Promise<void> {
    if (attempt >= this.#maxAttempts) {
      const stored = this.#messages.get(seq);
      if (stored) return this.#deadLetter(group, seq, stored, `failed ${attempt} attempts`, attempt, failures);
    }
    const meta = this.#meta.get(seq);
    if (group.gone || !meta) {
      this.#unref(seq); // its subscription has gone: nobody to give it to
      return;
    }
    group.retries.set(seq, { attempt: attempt + 1, failures });
    let write: Promise<unknown> | undefined;
    if (group.durable)
      write = this.#queue.put([group.topic, group.queue, seq], {
        size: meta.size,
        at: meta.at,
        attempt: attempt + 1,
        failures,
      });
    const redeliver = () => {
      group.busy--;
      if (this.#closed) return;
      if (group.gone) return void this.#unref(seq);
      group.ready.push(seq);
      this.#schedule(group);
    };
    group.busy++;
    const delay = delayMs ?? this.#backoff(attempt);
    if (delay > 0) {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        redeliver();
      }, delay);
      this.#timers.add(timer);
    } else redeliver();
    if (write) await this.#committed(write);
  }

  /** Keeps the message as a dead letter of `group` (it still counts against the bound), and copies it to `dlq.<topic>`. */
  async #deadLetter(
    group: Group,
    seq: number,
    stored: StoredMessage,
    reason: string,
    attempts: number,
    failures: FailedAttempt[],
  ): Promise<void> {
    group.retries.delete(seq);
    const meta = this.#meta.get(seq);
    if (!meta) return;
    // The queue entry becomes a dead letter: the message keeps its one reference.
    if (group.durable && !group.gone) this.#queue.remove([group.topic, group.queue, seq]);
    const record: DeadRecord = {
      size: meta.size,
      published: meta.at,
      at: new Date().toISOString(),
      reason,
      attempts,
      failures,
    };
    const write = this.#dead.put([group.topic, seq, group.queue], record);
    this.#deadBytes += meta.size;
    const headers = {
      ...stored.headers,
      [deadLetterHeaders.topic]: stored.topic,
      [deadLetterHeaders.reason]: reason,
      [deadLetterHeaders.attempts]: String(attempts),
      [deadLetterHeaders.errors]: JSON.stringify(failures),
    };
    // Taken past the bound: refusing it would lose a message already accepted. Only for present subscribers: the
    // dead letter itself is kept above.
    const topic = deadLetterTopic(stored.topic);
    void this.#put(
      topic,
      headers,
      bytes(stored.body),
      sizeOf(topic, headers, stored.body),
      this.#recipients(topic, false),
    ).catch((err: unknown) => this.#say('dlq', `copying a dead letter to ${topic} failed: ${(err as Error).message}`));
    await this.#committed(write);
  }

  /** One reference to `seq` fewer; the message goes once none is left (the removal's write, if so). */
  #unref(seq: number): Promise<unknown> | undefined {
    const meta = this.#meta.get(seq);
    if (!meta || --meta.refs > 0) return undefined;
    this.#meta.delete(seq);
    this.#bytes -= meta.size;
    return this.#write(this.#messages.remove(seq));
  }

  // --- retention

  /**
   * Drops what waited past the retention: messages kept for a first queue group, and queue groups that have had no
   * member for the retention, with what they hold. Time before this broker opened does not count.
   */
  #expire(): void {
    if (this.#closed) return;
    const cutoff = Date.now() - this.#retention;
    if (this.#openedAt > cutoff) return;
    for (const groups of [...this.#topics.values()]) {
      for (const group of [...groups.values()]) {
        if (!group.durable || group.members.length > 0) continue;
        if (group.queue === KEPT) {
          let dropped = 0;
          group.ready.retain((seq) => {
            const meta = this.#meta.get(seq);
            if (meta && meta.at > cutoff) return true;
            this.#write(this.#queue.remove([group.topic, KEPT, seq]));
            this.#unref(seq);
            dropped++;
            return false;
          });
          if (dropped > 0)
            this.#report(
              `dropped ${dropped} message${dropped === 1 ? '' : 's'} of ${group.topic}: no queue group subscribed within the retention (serve --retention)`,
            );
          if (group.ready.length === 0) this.#forget(group);
        } else if (group.left <= cutoff && group.busy === 0) {
          if (group.ready.length > 0)
            this.#report(
              `dropped ${group.ready.length} message${group.ready.length === 1 ? '' : 's'} of ${group.topic} for queue group ${group.queue}: it has had no member for the retention (serve --retention)`,
            );
          this.#forget(group);
        }
      }
    }
  }

  // --- the store

  /**
   * Reads the index: groups, queue entries and dead letters. Drops messages nothing refers to, and references to
   * messages that are not there (neither is left by a crash: a message is written before what refers to it, and
   * removed after; this mends a store damaged otherwise).
   */
  #load(): void {
    const now = this.#openedAt;
    const stored = new Set<number>();
    let last = 0;
    for (const seq of this.#messages.getKeys()) {
      stored.add(seq);
      last = Math.max(last, seq);
    }
    for (const { key } of this.#groups.getRange()) this.#group(key[0], key[1], true).left = now;
    for (const { key, value } of this.#queue.getRange()) {
      const [topic, queue, seq] = key;
      if (!stored.has(seq)) {
        this.#write(this.#queue.remove(key));
        continue;
      }
      const group = this.#group(topic, queue, true);
      group.left = now;
      group.ready.push(seq);
      if (value.attempt > 1) group.retries.set(seq, { attempt: value.attempt, failures: value.failures ?? [] });
      this.#index(seq, value.size, value.at);
    }
    for (const { key, value } of this.#dead.getRange()) {
      if (!stored.has(key[1])) {
        this.#write(this.#dead.remove(key));
        continue;
      }
      this.#index(key[1], value.size, value.published);
      this.#deadBytes += value.size;
    }
    for (const seq of stored) if (!this.#meta.has(seq)) this.#write(this.#messages.remove(seq));
    this.#seq = last + 1;
    this.#durable = last;
  }

  #index(seq: number, size: number, at: number): void {
    const meta = this.#meta.get(seq);
    if (meta) meta.refs++;
    else {
      this.#meta.set(seq, { refs: 1, size, at });
      this.#bytes += size;
    }
  }

  /** Tracks a write (close waits for the last); a failure is said once per kind, the caller need not wait. */
  #write(write: Promise<unknown>): Promise<unknown> {
    this.#lastWrite = write;
    write.catch((err: unknown) => this.#say('write', `its store could not write: ${(err as Error)?.message ?? err}`));
    return write;
  }

  /** Resolves once `write` is durable: committed and flushed to disk. */
  #written(write: Promise<unknown>): Promise<void> {
    return this.#store.durable(this.#write(write));
  }

  /**
   * Resolves once `write` is committed (a crash of serve keeps it; one of the machine may undo the last ones). For
   * settling: what the machine's crash undoes is only delivered again, or dead-lettered again.
   */
  async #committed(write: Promise<unknown>): Promise<void> {
    await this.#write(write);
  }

  #say(kind: string, line: string): void {
    if (this.#reported.has(kind)) return;
    this.#reported.add(kind);
    this.#report(`serve's broker: ${line}`);
  }

  #deadBytesHint(): string {
    return this.#deadBytes > this.#maxBytes / 4
      ? `; ${this.#deadBytes} bytes of it are dead letters (micro-fn dlq <topic> lists them, --replay hands them back)`
      : '';
  }
}

/** The bytes lmdb read, as a plain Uint8Array (a Buffer's extra methods are not part of the message). */
function bytes(body: Uint8Array): Uint8Array {
  return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
}

/** Why a handler's rejection failed the delivery. */
function failureOf(err: unknown): DeliveryFailure {
  if (isMicroError(err)) return { code: err.code, detail: err.detail };
  return { code: 500, detail: (err as Error)?.message ?? String(err) };
}
