/**
 * serve's span exporter: the function processes it runs send their finished spans over their pipe as plain data
 * (adapters/local/ipc.ts IpcSpans), and serve exports them in batches with OpenTelemetry's packages, loaded here (the
 * first time there are spans to send), never in a one-shot process. The queue is bounded (SpanBatch): a collector
 * that is slow or down costs dropped spans, counted and said, never an invocation's time nor serve's memory.
 */
import type { IpcSpans } from '../../adapters/local/ipc.js';
import type { Env } from '../../runtime/core/config.js';
import type { SpanData, SpanInfo, SpanKind, SpanOutcome } from '../../runtime/core/trace.js';
import type { SpanContext } from '../../runtime/core/trace-context.js';
import { SpanBatch, batchSettings, type SpanBatchCounts } from '../../runtime/plugins/otel/batch.js';
import type { ResourceSpan, ResourceSpanSender } from '../../runtime/plugins/otel/exporter.js';
import { spanSinkKey, tracesEndpoint } from '../../runtime/plugins/otel/settings.js';

/** How long serve's stop waits for the spans still queued, at most. */
const STOP_BOUND = 2000;
/** Spans one message may carry, at most (a process records one invocation's: a handful). */
const MAX_SPANS = 2048;
/** Attributes a resource may carry, and characters per value, at most. */
const MAX_ATTRIBUTES = 64;
const MAX_TEXT = 1024;

export interface SpanSinkOptions {
  /** serve's environment: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, headers, OTEL_BSP_*. */
  env: Env;
  /** Where serve says what went wrong (a line of its own output). */
  say: (line: string) => void;
}

/** The spans of serve's functions, on their way to the collector. */
export class SpanSink {
  /** What the functions are told (SPANS_ENV): their spans come here when their own settings say the same. */
  readonly key: string;
  readonly #url: string;
  readonly #say: (line: string) => void;
  readonly #batch: SpanBatch<ResourceSpan>;
  #sender: Promise<ResourceSpanSender> | undefined;
  /** A failure was said and no export has succeeded since: the next failures are quiet. */
  #failing = false;
  #invalid = 0;

  constructor(options: SpanSinkOptions) {
    const { env } = options;
    this.key = spanSinkKey(env)!;
    this.#url = tracesEndpoint(env)!;
    this.#say = options.say;
    const settings = batchSettings(env);
    this.#batch = new SpanBatch<ResourceSpan>({
      ...settings,
      send: async (items) => {
        const sender = await (this.#sender ??= this.#load(env, settings.timeout));
        await sender.export(items);
        this.#failing = false;
      },
      onFailure: (dropped, err) => {
        if (this.#failing) return;
        this.#failing = true;
        this.#say(
          `traces: ${dropped} spans dropped: the OTLP collector at ${this.#url} did not take them (${reason(err)})`,
        );
      },
    });
  }

  /** A sink when serve's environment names an OTLP endpoint, else undefined (nothing is loaded then). */
  static of(options: SpanSinkOptions): SpanSink | undefined {
    return spanSinkKey(options.env) === undefined ? undefined : new SpanSink(options);
  }

  /** Queues what a function process sent; what is not a span is skipped (and counted). Never throws. */
  accept(message: IpcSpans): void {
    const resource = resourceOf(message.resource);
    const spans = Array.isArray(message.spans) ? message.spans.slice(0, MAX_SPANS) : [];
    for (const value of spans) {
      const span = resource && spanOf(value);
      if (span) this.#batch.push({ resource, span });
      else this.#invalid++;
    }
  }

  /** Exported, dropped and waiting spans so far, and how many were not spans at all. */
  get counts(): SpanBatchCounts & { invalid: number } {
    return { ...this.#batch.counts, invalid: this.#invalid };
  }

  /** Sends what waits (2 s at most) and says what was lost, if anything. Never rejects. */
  async stop(): Promise<SpanBatchCounts> {
    const counts = await this.#batch.flush(STOP_BOUND);
    if (counts.dropped > 0)
      this.#say(
        `traces: ${counts.exported} spans exported, ${counts.dropped} dropped (the OTLP collector at ${this.#url} did not take them all)`,
      );
    return counts;
  }

  async #load(env: Env, timeout: number): Promise<ResourceSpanSender> {
    try {
      return await (await import('../../runtime/plugins/otel/exporter.js')).createOtlpSender(env, timeout);
    } catch (err) {
      this.#sender = undefined; // tried again with the next batch
      throw err;
    }
  }
}

function reason(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown } | undefined;
  return String(e?.message || e?.code || err)
    .split('\n')[0]!
    .slice(0, 200);
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const KINDS: ReadonlySet<string> = new Set<SpanKind>(['server', 'client', 'producer', 'consumer', 'internal']);

/** The resource's attributes when they are strings, bounded; else undefined. */
function resourceOf(value: unknown): Record<string, string> | undefined {
  if (!isObject(value)) return undefined;
  const entries = Object.entries(value);
  if (entries.length > MAX_ATTRIBUTES) return undefined;
  for (const [, v] of entries) if (!isText(v)) return undefined;
  return value as Record<string, string>;
}

/** A span as a function process sent it, checked field by field (a function is not trusted to send one). */
export function spanOf(value: unknown): SpanData | undefined {
  if (!isObject(value)) return undefined;
  const { name, kind, context, parent, start, end, info, error } = value;
  if (!isText(name) || typeof kind !== 'string' || !KINDS.has(kind)) return undefined;
  if (!isFinite(start) || !isFinite(end) || end < start) return undefined;
  const own = contextOf(context);
  if (!own) return undefined;
  const from = parent === undefined ? undefined : contextOf(parent);
  if (parent !== undefined && !from) return undefined;
  const facts = infoOf(info);
  if (!facts) return undefined;
  let outcome: SpanOutcome | undefined;
  if (error !== undefined) {
    if (!isObject(error) || !isFinite(error.code) || !isText(error.detail)) return undefined;
    outcome = { code: error.code, detail: error.detail };
  }
  return {
    name,
    kind: kind as SpanKind,
    context: own,
    ...(from && isObject(parent) ? { parent: { ...from, remote: parent.remote === true } } : {}),
    start,
    end,
    info: facts,
    ...(outcome ? { error: outcome } : {}),
  };
}

function contextOf(value: unknown): SpanContext | undefined {
  if (!isObject(value)) return undefined;
  const { traceId, spanId, flags, state } = value;
  if (typeof traceId !== 'string' || !HEX32.test(traceId) || typeof spanId !== 'string' || !HEX16.test(spanId))
    return undefined;
  if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > 255) return undefined;
  return { traceId, spanId, flags, ...(isText(state) ? { state } : {}) };
}

function infoOf(value: unknown): SpanInfo | undefined {
  if (!isObject(value)) return undefined;
  const out: SpanInfo = {};
  for (const key of ['function', 'service', 'endpoint', 'topic', 'id'] as const) {
    const v = value[key];
    if (v === undefined) continue;
    if (!isText(v)) return undefined;
    out[key] = v;
  }
  for (const key of ['attempt', 'status'] as const) {
    const v = value[key];
    if (v === undefined) continue;
    if (!isFinite(v)) return undefined;
    out[key] = v;
  }
  if (value.coldStart !== undefined) {
    if (typeof value.coldStart !== 'boolean') return undefined;
    out.coldStart = value.coldStart;
  }
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_TEXT;
}

function isFinite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}
