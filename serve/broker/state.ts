/**
 * What the durable broker holds in memory (its index: groups, and per message its references, size and time) and
 * how it writes to its store, shared by its parts: the broker (durable-broker.ts), opening (load.ts), the retention
 * (retention.ts) and the dead letters (dead-letter-box.ts).
 */
import type { DeliveryHandler, FailedAttempt } from '../../runtime/core/broker.js';
import type { Database, Store } from '../store/store.js';
import { Fifo } from './fifo.js';
import {
  KEPT,
  type DeadKey,
  type DeadRecord,
  type GroupKey,
  type GroupRecord,
  type QueueEntry,
  type QueueKey,
  type StoredMessage,
} from './records.js';

/** A message, as the index knows it. */
export interface Meta {
  /** Queue entries (of groups in memory) and dead letters that refer to the message. */
  refs: number;
  size: number;
  /** When it was published (ms); a replay counts as a publish. */
  at: number;
}

export interface Member {
  handler: DeliveryHandler;
  manual: boolean;
  max: number;
  taken: number;
  /** Deliveries handed over and not settled. */
  holding: number;
}

export interface Group {
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

export class BrokerState {
  readonly store: Store;
  readonly messages: Database<StoredMessage, number>;
  readonly queue: Database<QueueEntry, QueueKey>;
  readonly groups: Database<GroupRecord, GroupKey>;
  readonly dead: Database<DeadRecord, DeadKey>;
  readonly retention: number;
  /** When the broker opened: time serve was not running does not count against the retention. */
  readonly openedAt = Date.now();
  /** topic -> queue -> group */
  readonly topics = new Map<string, Map<string, Group>>();
  readonly meta = new Map<number, Meta>();
  /** Bytes of messages kept (counted against the bound). */
  bytes = 0;
  /** Bytes of dead letters (part of `bytes`). */
  deadBytes = 0;
  /** The next message's sequence number. */
  seq = 1;
  /** Every message up to this one is durable: it may be handed out. */
  durable = 0;
  closed = false;
  /** The last write issued (writes commit in order): closing waits for it. */
  lastWrite: Promise<unknown> = Promise.resolve();
  readonly report: (line: string) => void;
  readonly #reported = new Set<string>();

  constructor(store: Store, retention: number, report: (line: string) => void) {
    this.store = store;
    this.messages = store.database('broker.messages');
    this.queue = store.database('broker.queue');
    this.groups = store.database('broker.groups');
    this.dead = store.database('broker.dead');
    this.retention = retention;
    this.report = report;
  }

  /** Group `queue` of `topic`, made if it is not known (or was forgotten). */
  group(topic: string, queue: string, durable: boolean): Group {
    let groups = this.topics.get(topic);
    if (!groups) this.topics.set(topic, (groups = new Map()));
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
  recipients(topic: string, keep: boolean): Group[] {
    const out: Group[] = [];
    let queued = false;
    const cutoff = Date.now() - this.retention;
    for (const group of this.topics.get(topic)?.values() ?? []) {
      if (group.queue === KEPT) continue;
      if (!group.durable) {
        if (group.members.length > 0) out.push(group);
      } else if (group.members.length > 0 || group.left > cutoff) {
        out.push(group);
        queued = true;
      }
    }
    if (!queued && keep) out.push(this.group(topic, KEPT, true));
    return out;
  }

  /** Drops `group` and the messages it holds that nobody else refers to. */
  forget(group: Group): void {
    group.gone = true;
    const groups = this.topics.get(group.topic);
    if (groups?.get(group.queue) === group) groups.delete(group.queue);
    if (groups?.size === 0) this.topics.delete(group.topic);
    for (const seq of group.ready) {
      if (group.durable) this.write(this.queue.remove([group.topic, group.queue, seq]));
      this.unref(seq);
    }
    group.ready.clear();
    group.retries.clear();
    if (group.durable && group.queue !== KEPT) this.write(this.groups.remove([group.topic, group.queue]));
  }

  /** One more reference to message `seq` (made if the index does not know it). */
  index(seq: number, size: number, at: number): void {
    const meta = this.meta.get(seq);
    if (meta) meta.refs++;
    else {
      this.meta.set(seq, { refs: 1, size, at });
      this.bytes += size;
    }
  }

  /** One reference to `seq` fewer; the message goes once none is left (the removal's write, if so). */
  unref(seq: number): Promise<unknown> | undefined {
    const meta = this.meta.get(seq);
    if (!meta || --meta.refs > 0) return undefined;
    this.meta.delete(seq);
    this.bytes -= meta.size;
    return this.write(this.messages.remove(seq));
  }

  /** Tracks a write (closing waits for the last); a failure is said once, the caller need not wait. */
  write(write: Promise<unknown>): Promise<unknown> {
    this.lastWrite = write;
    write.catch((err: unknown) => this.say('write', `its store could not write: ${(err as Error)?.message ?? err}`));
    return write;
  }

  /** Resolves once `write` is durable: committed and flushed to disk. */
  written(write: Promise<unknown>): Promise<void> {
    return this.store.durable(this.write(write));
  }

  /**
   * Resolves once `write` is committed (a crash of serve keeps it; one of the machine may undo the last ones). For
   * settling: what a crash of the machine undoes is only delivered again, or dead-lettered again.
   */
  async committed(write: Promise<unknown>): Promise<void> {
    await this.write(write);
  }

  /** Says `line` on serve's stderr, once per `kind`. */
  say(kind: string, line: string): void {
    if (this.#reported.has(kind)) return;
    this.#reported.add(kind);
    this.report(`serve's broker: ${line}`);
  }
}
