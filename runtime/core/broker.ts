/** A message as brokers carry it: bytes plus string headers. */
export interface BrokerMessage {
  /** Unique per published message; redeliveries keep it. */
  id: string;
  topic: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** What `publish` takes: the broker fills in `id` and `topic`. */
export interface PublishMessage {
  headers?: Record<string, string>;
  body: Uint8Array;
}

/** Why a delivery failed: what `nak` may say, and what a dead letter records of each attempt. */
export interface DeliveryFailure {
  /** HTTP-like, as in error JSON (500 a handler's failure, 408 a timeout, …). */
  code: number;
  detail: string;
}

/** One failed delivery of a dead-lettered message. */
export interface FailedAttempt extends DeliveryFailure {
  attempt: number;
  /** When it failed (ISO 8601). */
  at: string;
}

/** One delivery of a message to one subscription. Settle it exactly once. */
export interface Delivery {
  readonly message: BrokerMessage;
  /** 1 on the first delivery, 2 on the first redelivery, … */
  readonly attempt: number;
  /** Done: never deliver it again. */
  ack(): Promise<void>;
  /**
   * Failed: deliver it again after `delayMs` (the broker's backoff when absent) or dead-letter it past the limit.
   * `failure` says why; brokers that keep dead letters record it with the attempt.
   */
  nak(delayMs?: number, failure?: DeliveryFailure): Promise<void>;
  /** Poison: never deliver it again, and dead-letter it. */
  term(reason?: string): Promise<void>;
}

export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group instead of to every subscriber. */
  queue?: string;
  /** Take at most this many messages, then unsubscribe (a one-shot function takes 1). */
  max?: number;
  /**
   * `auto` (default): the delivery is acked when the handler resolves and nakked when it throws.
   * `manual`: the handler settles it.
   */
  ack?: 'auto' | 'manual';
}

export interface Subscription {
  readonly topic: string;
  unsubscribe(): Promise<void>;
}

export type DeliveryHandler = (delivery: Delivery) => void | Promise<void>;

/**
 * Publish/subscribe. Delivery guarantees differ per plugin and are documented with each:
 * memory at-least-once within the process lifetime, local (serve's broker, kept on disk) and JetStream at-least-once
 * across crashes, NATS core at-most-once.
 */
export interface Broker {
  publish(topic: string, message: PublishMessage): Promise<void>;
  subscribe(topic: string, handler: DeliveryHandler, options?: SubscribeOptions): Promise<Subscription>;
  close?(): Promise<void>;
}

/** Where a message goes once it failed too often: `dlq.<topic>` (so `dlq.>` watches every one). */
export function deadLetterTopic(topic: string): string {
  return `dlq.${topic}`;
}

/** Headers a dead-lettered message carries besides its own. */
export const deadLetterHeaders = {
  topic: 'micro-dead-letter-topic',
  reason: 'micro-dead-letter-reason',
  attempts: 'micro-dead-letter-attempts',
  /** JSON array of FailedAttempt: the failures the broker was told of (`nak(delay, failure)`), oldest first. */
  errors: 'micro-dead-letter-errors',
} as const;

const MAX_DETAIL = 1024;

/** Attempt `attempt` failed now, for the reason given (a nak without one says so). */
export function failedAttempt(attempt: number, failure: DeliveryFailure | undefined): FailedAttempt {
  const { code, detail } = failure ?? { code: 500, detail: 'nakked without a reason' };
  // Bounded: a dead letter keeps one per attempt, and a detail is whatever a handler threw.
  const text = String(detail);
  return {
    attempt,
    code: Number(code) || 500,
    detail: text.length > MAX_DETAIL ? `${text.slice(0, MAX_DETAIL)}…` : text,
    at: new Date().toISOString(),
  };
}

/** The failures a dead letter's headers record (`deadLetterHeaders.errors`); none when absent or unreadable. */
export function failedAttempts(headers: Record<string, string>): FailedAttempt[] {
  try {
    const list: unknown = JSON.parse(headers[deadLetterHeaders.errors] ?? '[]');
    return Array.isArray(list) ? list.filter(isFailedAttempt) : [];
  } catch {
    return [];
  }
}

function isFailedAttempt(value: unknown): value is FailedAttempt {
  const v = value as FailedAttempt;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.attempt === 'number' &&
    typeof v.code === 'number' &&
    typeof v.detail === 'string' &&
    typeof v.at === 'string'
  );
}
