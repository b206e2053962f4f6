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
import { openOwnStore, type Store } from '../store/store.js';
import { deadLetterBox, type DurableDeadLetters } from './dead-letter-box.js';
import { loadIndex } from './load.js';
import { KEPT, plainQueue, queueProblem, sizeOf, type DeadRecord, type StoredMessage } from './records.js';
import { expire } from './retention.js';
import { BrokerState, type Group, type Member } from './state.js';

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
  /** Where a failure to write the store, and what the retention dropped, are said. Default: serve's stderr. */
  report?: (line: string) => void;
}

export const DEFAULT_BROKER_BYTES = 1024 * 1024 * 1024;
export const DEFAULT_RETENTION = 24 * 60 * 60 * 1000;

const defaultBackoff = (attempt: number): number => Math.min(1000, 20 * 2 ** (attempt - 1));
const ID = 'micro-fn';

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
  readonly #state: BrokerState;
  readonly #maxAttempts: number;
  readonly #backoff: (attempt: number) => number;
  readonly #maxBytes: number;
  readonly #prefetch: number;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #sweeper: ReturnType<typeof setInterval>;
  #plain = 0;
  #closing: Promise<void> | undefined;
  /** The dead letters this broker keeps, for `micro-fn dlq`; a replay hands them back itself, in one transaction. */
  readonly deadLetters: DurableDeadLetters;

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
    const report = options.report ?? ((line) => void process.stderr.write(`[micro-fn serve] ${line}\n`));
    this.#state = new BrokerState(store, retention, report);
    this.#maxAttempts = maxAttempts;
    this.#backoff = backoff;
    this.#maxBytes = maxBytes;
    this.#prefetch = prefetch;
    loadIndex(this.#state);
    this.deadLetters = deadLetterBox(this.#state, (group) => this.#schedule(group));
    this.#sweeper = setInterval(() => expire(this.#state), Math.min(60_000, Math.max(10, retention / 4)));
    this.#sweeper.unref();
  }

  /** Where the messages are kept. */
  get path(): string {
    return this.#state.store.path;
  }

  /** Bytes of messages kept now (counted against `maxBytes`). */
  get bytes(): number {
    return this.#state.bytes;
  }

  /** Messages kept now: waiting, in flight or dead-lettered. */
  get messages(): number {
    return this.#state.meta.size;
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
    const state = this.#state;
    const topics: { topic: string; group: string; waiting: number; inflight: number }[] = [];
    for (const [topic, groups] of state.topics)
      for (const group of groups.values())
        if (group.durable && !group.gone)
          topics.push({
            topic,
            group: group.queue === KEPT ? '(kept)' : group.queue,
            waiting: group.ready.length,
            inflight: group.busy,
          });
    const dead = new Map<string, number>();
    if (!state.closed) for (const key of state.dead.getKeys()) dead.set(key[0], (dead.get(key[0]) ?? 0) + 1);
    return {
      topics,
      deadLetters: [...dead].map(([topic, count]) => ({ topic, count })),
      messages: state.meta.size,
      bytes: state.bytes,
    };
  }

  /**
   * Resolves once the message is durable. Rejects with a 503 after `close()`, a retryable 503 when the messages
   * kept would pass `maxBytes`, and a 503 when the store cannot write it (nothing of it is kept then).
   */
  async publish(topic: string, message: PublishMessage): Promise<void> {
    const state = this.#state;
    if (state.closed) throw new MicroError(ID, 503, `the broker is closed: cannot publish to ${topic}`);
    if (!(message?.body instanceof Uint8Array)) throw new TypeError('a published message needs a Uint8Array body');
    const headers = { ...message.headers };
    const size = sizeOf(topic, headers, message.body);
    if (state.bytes + size > this.#maxBytes) {
      const dead =
        state.deadBytes > this.#maxBytes / 4
          ? `; ${state.deadBytes} bytes of it are dead letters (micro-fn dlq <topic> lists them, --replay hands them back)`
          : '';
      throw new MicroError(
        ID,
        503,
        `serve's broker keeps ${state.bytes} bytes of messages, and ${size} more would pass its limit of ${this.#maxBytes} (serve --broker-limit): publish again once subscribers catch up${dead}`,
        { retryable: true },
      );
    }
    await this.#put(topic, headers, message.body, size, state.recipients(topic, true));
  }

  /** Stores a message for `groups` and hands it out once durable. */
  async #put(
    topic: string,
    headers: Record<string, string>,
    body: Uint8Array,
    size: number,
    groups: Group[],
  ): Promise<void> {
    const state = this.#state;
    if (groups.length === 0) return;
    const seq = state.seq++;
    const at = Date.now();
    state.meta.set(seq, { refs: groups.length, size, at });
    state.bytes += size;
    const write = state.messages.put(seq, { id: newId(), topic, headers, body, at });
    for (const group of groups) {
      if (group.durable) state.queue.put([topic, group.queue, seq], { size, at, attempt: 1 });
      group.ready.push(seq);
    }
    try {
      await state.written(write);
    } catch (err) {
      // Not kept: the groups skip it (it has no index entry any more).
      if (state.meta.delete(seq)) state.bytes -= size;
      throw new MicroError(ID, 503, `serve's broker could not store the message: ${(err as Error).message}`, {
        retryable: true,
      });
    }
    if (seq > state.durable) state.durable = seq;
    for (const group of groups) this.#schedule(group);
  }

  async subscribe(topic: string, handler: DeliveryHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#state.closed) throw new MicroError(ID, 503, `the broker is closed: cannot subscribe to ${topic}`);
    if (typeof handler !== 'function') throw new TypeError('subscribe needs a handler function');
    const { queue, max = Infinity, ack = 'auto' } = options;
    if (max !== Infinity && (!Number.isInteger(max) || max < 1))
      throw new TypeError(`max must be an integer >= 1; got ${String(max)}`);
    if (ack !== 'auto' && ack !== 'manual') throw new TypeError(`ack must be 'auto' or 'manual'; got ${String(ack)}`);
    const problem = queue ? queueProblem(queue) : undefined;
    if (problem) throw new MicroError(ID, 400, problem);
    const member: Member = { handler, manual: ack === 'manual', max, taken: 0, holding: 0 };
    const group = queue ? this.#queueGroup(topic, queue) : this.#state.group(topic, plainQueue(++this.#plain), false);
    group.members.push(member);
    this.#schedule(group);
    return { topic, unsubscribe: async () => this.#leave(group, member) };
  }

  /** The queue group `queue` of `topic`, joined: known from now on, and first to take what was kept for one. */
  #queueGroup(topic: string, queue: string): Group {
    const state = this.#state;
    const group = state.group(topic, queue, true);
    if (group.members.length > 0) return group;
    group.left = 0;
    state.write(state.groups.put([topic, queue], { left: 0 }));
    const kept = state.topics.get(topic)?.get(KEPT);
    if (kept && kept.ready.length > 0) {
      const moved: number[] = [];
      for (const seq of kept.ready) {
        const meta = state.meta.get(seq);
        if (!meta) continue;
        state.queue.remove([topic, KEPT, seq]);
        state.write(state.queue.put([topic, queue, seq], { size: meta.size, at: meta.at, attempt: 1 }));
        moved.push(seq);
      }
      kept.ready.clear();
      state.forget(kept);
      group.ready.merge(moved);
    }
    return group;
  }

  #leave(group: Group, member: Member): void {
    const state = this.#state;
    const index = group.members.indexOf(member);
    if (index < 0) return;
    group.members.splice(index, 1);
    if (group.members.length > 0 || state.closed) return;
    group.left = Date.now();
    // A queue group stays known (and collects) for the retention; a plain subscription goes with what it held.
    if (group.durable) state.write(state.groups.put([group.topic, group.queue], { left: group.left }));
    else state.forget(group);
  }

  /** Cancels redeliveries, waits for the writes under way and closes the store. Safe to call twice. */
  close(): Promise<void> {
    const state = this.#state;
    if (!this.#closing) {
      state.closed = true;
      clearInterval(this.#sweeper);
      for (const timer of this.#timers) clearTimeout(timer);
      this.#timers.clear();
      this.#closing = state.lastWrite.then(
        () => state.store.close(),
        () => state.store.close(),
      );
    }
    return this.#closing;
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
    const state = this.#state;
    while (!state.closed && !group.gone && group.ready.length > 0) {
      const seq = group.ready.peek()!;
      if (!state.meta.has(seq)) {
        group.ready.shift(); // not stored after all, or dropped
        continue;
      }
      if (seq > state.durable) return; // scheduled again once it is durable
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
    const state = this.#state;
    const stored = state.messages.get(seq);
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
        if (state.closed) return; // not written: it comes again after serve starts
        this.#schedule(group);
        await then(...args);
      };
    if (!stored) {
      state.say('missing', `message ${seq} of ${group.topic} is in the index but not in the store; dropped`);
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
      .catch((err: unknown) => state.say('settle', `settling a delivery failed: ${(err as Error)?.message ?? err}`));
  }

  async #ack(group: Group, seq: number): Promise<void> {
    const state = this.#state;
    group.retries.delete(seq);
    let write: Promise<unknown> | undefined;
    if (group.durable && !group.gone) write = state.queue.remove([group.topic, group.queue, seq]);
    write = state.unref(seq) ?? write;
    if (write) await state.committed(write);
  }

  async #nak(group: Group, seq: number, attempt: number, failures: FailedAttempt[], delayMs?: number): Promise<void> {
    const state = this.#state;
    if (attempt >= this.#maxAttempts) {
      const stored = state.messages.get(seq);
      if (stored) return this.#deadLetter(group, seq, stored, `failed ${attempt} attempts`, attempt, failures);
    }
    const meta = state.meta.get(seq);
    if (group.gone || !meta) {
      state.unref(seq); // its subscription has gone: nobody to give it to
      return;
    }
    group.retries.set(seq, { attempt: attempt + 1, failures });
    let write: Promise<unknown> | undefined;
    if (group.durable)
      write = state.queue.put([group.topic, group.queue, seq], {
        size: meta.size,
        at: meta.at,
        attempt: attempt + 1,
        failures,
      });
    const redeliver = () => {
      group.busy--;
      if (state.closed) return;
      if (group.gone) return void state.unref(seq);
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
    if (write) await state.committed(write);
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
    const state = this.#state;
    group.retries.delete(seq);
    const meta = state.meta.get(seq);
    if (!meta) return;
    // The queue entry becomes a dead letter: the message keeps its one reference.
    if (group.durable && !group.gone) state.queue.remove([group.topic, group.queue, seq]);
    const record: DeadRecord = {
      size: meta.size,
      published: meta.at,
      at: new Date().toISOString(),
      reason,
      attempts,
      failures,
    };
    const write = state.dead.put([group.topic, seq, group.queue], record);
    state.deadBytes += meta.size;
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
    const body = bytes(stored.body);
    void this.#put(topic, headers, body, sizeOf(topic, headers, body), state.recipients(topic, false)).catch(
      (err: unknown) => state.say('dlq', `copying a dead letter to ${topic} failed: ${(err as Error).message}`),
    );
    await state.committed(write);
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
