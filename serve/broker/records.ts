/**
 * What the durable broker keeps in its store, and under which keys. Four databases:
 *
 * ```
 * messages  seq                      -> StoredMessage   each published message once, with its body
 * queue     [topic, queue, seq]      -> QueueEntry      one per message a queue group still has to handle
 * groups    [topic, queue]           -> GroupRecord     the queue groups known on each topic
 * dead      [topic, seq, queue]      -> DeadRecord      dead letters (their bodies stay in `messages`)
 * ```
 *
 * `seq` numbers messages in publish order. A message stays in `messages` while a queue entry or a dead letter
 * refers to it. Messages kept for the first queue group of a topic that has none are queue entries under
 * `KEPT`. Plain subscriptions (no queue) are not written: they end with the process.
 */
import type { FailedAttempt } from '../../runtime/core/broker.js';

export interface StoredMessage {
  id: string;
  topic: string;
  headers: Record<string, string>;
  body: Uint8Array;
  /** When it was published (ms since the epoch). */
  at: number;
}

export interface QueueEntry {
  /** Bytes the message counts against the bound. */
  size: number;
  /** When it was published (ms). */
  at: number;
  /** The attempt its next delivery is. */
  attempt: number;
  /** The attempts that failed so far. */
  failures?: FailedAttempt[];
}

export interface GroupRecord {
  /** When its last member left (ms); 0 while it has members. */
  left: number;
}

export interface DeadRecord {
  size: number;
  /** When it was published (ms). */
  published: number;
  /** When it was dead-lettered (ISO 8601). */
  at: string;
  reason: string;
  attempts: number;
  failures: FailedAttempt[];
}

export type QueueKey = [topic: string, queue: string, seq: number];
export type GroupKey = [topic: string, queue: string];
export type DeadKey = [topic: string, seq: number, queue: string];

/** The queue name of messages kept for a topic's first queue group. Queue names given by subscribers are printable. */
export const KEPT = '\u0001';

/** The queue name of a plain subscription (never written). */
export const plainQueue = (n: number): string => `\u0002${n}`;

/** A queue name a subscriber may give: printable text, so the broker's own names never collide with one. */
export function queueProblem(queue: string): string | undefined {
  if (queue.length > 255) return `a queue name is at most 255 characters; got ${queue.length}`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(queue)) return 'a queue name is printable text, without control characters';
  return undefined;
}

/** Bytes a message counts against the broker's bound: its body, topic and headers, plus a record's overhead. */
export function sizeOf(topic: string, headers: Record<string, string>, body: Uint8Array): number {
  let size = 64 + body.byteLength + topic.length;
  for (const [k, v] of Object.entries(headers)) size += k.length + v.length + 4;
  return size;
}
