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

/** One delivery of a message to one subscription. Settle it exactly once. */
export interface Delivery {
  readonly message: BrokerMessage;
  /** 1 on the first delivery, 2 on the first redelivery, … */
  readonly attempt: number;
  /** Done: never deliver it again. */
  ack(): Promise<void>;
  /** Failed: deliver it again after `delayMs` (the broker's backoff when absent) or dead-letter it past the limit. */
  nak(delayMs?: number): Promise<void>;
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
 * memory and local are at-least-once within the process lifetime, NATS core at-most-once, JetStream at-least-once.
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
} as const;
