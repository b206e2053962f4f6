/**
 * Spans: each invocation is one (server or consumer), each call and publish made through a handler's `ctx.client`
 * one more (client or producer), children of the invocation's. Core records them as plain data; an exporter
 * (runtime/plugins/otel, OpenTelemetry's own packages) is loaded only when there is something to send, and only when
 * the host configured one. Without one, nothing is recorded, and a `traceparent` that came in is passed on as it
 * is, so the trace goes on through this hop.
 */
import { isSampled, newSpanId, newTraceId, type SpanContext } from './trace-context.js';

export type SpanKind = 'server' | 'client' | 'producer' | 'consumer' | 'internal';

export type SpanAttributes = Record<string, string | number | boolean>;

/** A finished span, as an exporter gets it. Times are epoch milliseconds (fractions kept). */
export interface SpanData {
  readonly name: string;
  readonly kind: SpanKind;
  readonly context: SpanContext;
  /** The span this one is a child of; `remote` when it came from another process. */
  readonly parent?: SpanContext & { readonly remote: boolean };
  readonly start: number;
  readonly end: number;
  readonly attributes: SpanAttributes;
  /** Unset: it ended without an error. */
  readonly error?: string;
}

/** Sends finished spans somewhere (an OTLP endpoint). Resolves when sent; may reject. */
export interface SpanExporter {
  export(spans: readonly SpanData[]): Promise<void>;
}

/** Makes the exporter of a function, the first time a span is to be sent. */
export type ExporterLoader = (service: string) => Promise<SpanExporter>;

/** Finished spans a Tracer keeps before a flush, at most: a host that never flushes must not grow without bound. */
const MAX_PENDING = 2048;

/** The clock of span times: the performance clock is finer than Date.now() (workerd freezes both alike). */
function now(): number {
  return typeof performance === 'object' ? performance.timeOrigin + performance.now() : Date.now();
}

/** One span being timed. Non-recording spans only carry a context on. */
export class Span {
  readonly #tracer: Tracer | undefined;
  readonly #start = now();
  readonly #attributes: SpanAttributes;
  #ended = false;

  constructor(
    tracer: Tracer | undefined,
    readonly name: string,
    readonly kind: SpanKind,
    /** What the next hop's `traceparent` says. */
    readonly context: SpanContext,
    readonly parent: (SpanContext & { remote: boolean }) | undefined,
    attributes: SpanAttributes,
  ) {
    this.#tracer = tracer;
    this.#attributes = attributes;
  }

  /** True when this span is exported once ended. */
  get recording(): boolean {
    return this.#tracer !== undefined;
  }

  setAttribute(key: string, value: string | number | boolean): this {
    this.#attributes[key] = value;
    return this;
  }

  /** Ends the span (once; later calls do nothing); `error` marks it failed with that description. */
  end(error?: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#tracer?.finished({
      name: this.name,
      kind: this.kind,
      context: this.context,
      ...(this.parent ? { parent: this.parent } : {}),
      start: this.#start,
      end: now(),
      attributes: this.#attributes,
      ...(error !== undefined ? { error } : {}),
    });
  }
}

export interface TracerOptions {
  /** The function's name: the default `service.name` of what it exports. */
  service: string;
  /** Loads the exporter; absent: nothing is recorded (context is still passed on). */
  exporter?: () => Promise<SpanExporter>;
}

/**
 * Starts spans and keeps the finished ones until `flush` sends them. One per function instance (no module-level
 * state): two functions in one process never share spans.
 */
export class Tracer {
  readonly service: string;
  /**
   * Whether this instance's invocation is its host's first (a cold start), when the adapter knows: set it before
   * the invocation; the invocation's span carries it as `faas.coldstart`.
   */
  coldStart: boolean | undefined;
  readonly #exporter: (() => Promise<SpanExporter>) | undefined;
  #pending: SpanData[] = [];

  constructor(options: TracerOptions) {
    this.service = options.service;
    this.#exporter = options.exporter;
  }

  /** True when spans are recorded and exported. */
  get recording(): boolean {
    return this.#exporter !== undefined;
  }

  /**
   * A span of `kind`, child of `parent` (a remote context from a header, or a span of this process). Recording: a
   * new span id in the parent's trace (a new trace without one), unless the parent asked not to be sampled.
   * Not recording: undefined without a parent, else a span that carries the parent's context on unchanged.
   */
  start(
    name: string,
    kind: SpanKind,
    parent: SpanContext | undefined,
    attributes: SpanAttributes = {},
    remote = false,
  ): Span | undefined {
    const from = parent ? { ...parent, remote } : undefined;
    if (!this.#exporter || (parent && !isSampled(parent))) {
      return parent ? new Span(undefined, name, kind, parent, from, attributes) : undefined;
    }
    const context: SpanContext = {
      traceId: parent?.traceId ?? newTraceId(),
      spanId: newSpanId(),
      flags: parent ? parent.flags : 1,
      ...(parent?.state ? { state: parent.state } : {}),
    };
    return new Span(this, name, kind, context, from, attributes);
  }

  /** Called by a recording span when it ends. */
  finished(span: SpanData): void {
    if (this.#pending.length < MAX_PENDING) this.#pending.push(span);
  }

  /**
   * Sends the finished spans, waiting at most `ms`: a collector that is down or slow never holds the host up
   * longer. Never rejects; spans that could not be sent in time are dropped.
   */
  async flush(ms: number): Promise<void> {
    if (!this.#exporter || this.#pending.length === 0) return;
    const spans = this.#pending;
    this.#pending = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const sent = this.#exporter().then((e) => e.export(spans));
    await Promise.race([sent, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).catch(() => {});
    clearTimeout(timer);
  }
}

/** How long a host waits for its spans to be sent before it ends anyway. */
export const FLUSH_BOUND = 1500;
