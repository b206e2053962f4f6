/**
 * A bounded batch of spans on their way to a collector, as OpenTelemetry's BatchSpanProcessor keeps one (and read
 * from its variables, https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/#batch-span-processor):
 * spans wait in a queue of at most `maxQueue` and go out `maxBatch` at a time, one export at a time, `delay` ms after
 * the first one waits. Nothing here ever waits on the collector: a collector that is slow or down makes the queue
 * full, and then the oldest span is dropped (and counted) for each new one. No package, no I/O.
 */
import type { Env } from '../../core/config.js';

export interface SpanBatchOptions<T> {
  /** Sends one batch; rejects when the collector did not take it (its spans are counted dropped). */
  send(items: T[]): Promise<void>;
  /** Spans waiting, at most (OTEL_BSP_MAX_QUEUE_SIZE). */
  maxQueue: number;
  /** Spans per export, at most (OTEL_BSP_MAX_EXPORT_BATCH_SIZE). */
  maxBatch: number;
  /** Milliseconds a span waits for others before a batch goes (OTEL_BSP_SCHEDULE_DELAY). */
  delay: number;
  /** Told of each failed export: how many spans it lost and why. */
  onFailure?: (dropped: number, error: unknown) => void;
}

/** How many spans went, how many were dropped (a full queue, a failed export, a stop), and how many wait. */
export interface SpanBatchCounts {
  exported: number;
  dropped: number;
  queued: number;
}

/** The batch settings in `env` (OTEL_BSP_*), with OpenTelemetry's defaults except a shorter delay (local tooling). */
export function batchSettings(env: Env): Pick<SpanBatchOptions<unknown>, 'maxQueue' | 'maxBatch' | 'delay'> & {
  timeout: number;
} {
  const int = (name: string, fallback: number) => {
    const n = Number(env[name]);
    return Number.isInteger(n) && n > 0 ? n : fallback;
  };
  const maxQueue = int('OTEL_BSP_MAX_QUEUE_SIZE', 2048);
  return {
    maxQueue,
    maxBatch: Math.min(maxQueue, int('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512)),
    delay: int('OTEL_BSP_SCHEDULE_DELAY', 200),
    timeout: int('OTEL_BSP_EXPORT_TIMEOUT', 10000),
  };
}

/** The queue of spans to export. See the module's comment. */
export class SpanBatch<T> {
  readonly #o: SpanBatchOptions<T>;
  #queue: T[] = [];
  #sending: Promise<void> | undefined;
  /** The batch of the export on its way. */
  #inflight: T[] | undefined;
  /** A batch `flush` counted dropped while it was on its way: its late outcome is not counted again. */
  #given: T[] | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #exported = 0;
  #dropped = 0;

  constructor(options: SpanBatchOptions<T>) {
    this.#o = options;
  }

  /** Queues `item`; a full queue drops its oldest. Never waits, never throws. */
  push(item: T): void {
    if (this.#queue.length >= this.#o.maxQueue) {
      this.#queue.shift();
      this.#dropped++;
    }
    this.#queue.push(item);
    if (this.#queue.length >= this.#o.maxBatch) this.#next();
    else this.#timer ??= unref(setTimeout(() => this.#next(), this.#o.delay));
  }

  get counts(): SpanBatchCounts {
    return { exported: this.#exported, dropped: this.#dropped, queued: this.#queue.length };
  }

  /** Starts the next export unless one is on its way (it starts the next when it settles). */
  #next(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#sending || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.#o.maxBatch);
    let sent: Promise<void>;
    try {
      sent = this.#o.send(batch);
    } catch (err) {
      sent = Promise.reject(err);
    }
    this.#inflight = batch;
    this.#sending = sent.then(
      () => void (this.#given !== batch && (this.#exported += batch.length)),
      (err: unknown) => {
        if (this.#given === batch) return;
        this.#dropped += batch.length;
        this.#o.onFailure?.(batch.length, err);
      },
    );
    void this.#sending.then(() => {
      this.#sending = undefined;
      this.#inflight = undefined;
      if (this.#queue.length >= this.#o.maxBatch) this.#next();
      else if (this.#queue.length > 0) this.#timer ??= unref(setTimeout(() => this.#next(), this.#o.delay));
    });
  }

  /**
   * Sends what waits, waiting `ms` at most; what has not gone by then is counted dropped (the host is about to end).
   * Resolves with the final counts; never rejects.
   */
  async flush(ms: number): Promise<SpanBatchCounts> {
    const until = Date.now() + ms;
    while ((this.#queue.length > 0 || this.#sending) && Date.now() < until) {
      this.#next();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#sending, new Promise((r) => (timer = setTimeout(r, Math.max(1, until - Date.now()))))]);
      clearTimeout(timer);
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    // Still waiting or on their way past the bound: they will not arrive before the host ends.
    this.#dropped += this.#queue.length + (this.#inflight?.length ?? 0);
    this.#given = this.#inflight;
    this.#queue = [];
    return this.counts;
  }
}

/** A timer that does not keep the host alive: a process with spans waiting still ends when it has nothing else. */
function unref<T>(timer: T): T {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}
