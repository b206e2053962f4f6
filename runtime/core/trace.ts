/**
 * Spans: each invocation is one (server or consumer), each call and publish made through a handler's `ctx.client`
 * one more (client or producer), children of the invocation's. What records them (trace-recorder.ts) and what sends
 * them (runtime/plugins/otel, OpenTelemetry's own packages) come only with a host that exports traces; without one
 * a function records nothing, and a `traceparent` that came in goes on as it is, so the trace continues through
 * this hop. This module is what every bundle carries: types and the pass-through, nothing more.
 */
import type { Metadata } from './metadata.js';
import type { SpanContext } from './trace-context.js';

export type SpanKind = 'server' | 'client' | 'producer' | 'consumer' | 'internal';

/**
 * What a span says of its invocation, call or publish. The exporter names these as OpenTelemetry's conventions do
 * (`faas.*`, `rpc.*`, `messaging.*`): that naming ships only with it, never in every bundle.
 */
export interface SpanInfo {
  /** The function (service) that records the span. */
  function?: string;
  /** The service called or serving. */
  service?: string;
  endpoint?: string;
  topic?: string;
  /** Invocation or message id. */
  id?: string;
  attempt?: number;
  /** HTTP-like: 200, or the error's code. */
  status?: number;
  /** The invocation was its host's first. */
  coldStart?: boolean;
}

/** How a span ended: an error's code and detail; nothing when it succeeded. */
export interface SpanOutcome {
  code: number;
  detail: string;
}

/** A finished span, as an exporter gets it. Times are epoch milliseconds (fractions kept). */
export interface SpanData {
  readonly name: string;
  readonly kind: SpanKind;
  readonly context: SpanContext;
  /** The span this one is a child of; `remote` when it came from another process. */
  readonly parent?: SpanContext & { readonly remote: boolean };
  readonly start: number;
  readonly end: number;
  readonly info: SpanInfo;
  /** Unset: it ended without an error. */
  readonly error?: SpanOutcome;
}

/** Sends finished spans somewhere (an OTLP endpoint). Resolves when sent; may reject. */
export interface SpanExporter {
  export(spans: readonly SpanData[]): Promise<void>;
}

/** Makes the exporter of function `service`, the first time a span is to be sent. */
export type ExporterLoader = (service: string) => Promise<SpanExporter>;

/** One span being timed. */
export interface Span {
  readonly context: SpanContext;
  /** `context` as a `traceparent` header: what a call made under this span sends. */
  readonly traceparent: string;
  /** Ends the span (once) with `status` (200 when absent); `error` marks it failed. */
  end(status?: number, error?: SpanOutcome): void;
  /** Ends the span when `work` settles (failed with what it rejects with, a MicroError's code and detail); returns it. */
  track<T>(work: Promise<T>): Promise<T>;
}

/** Starts spans and sends the finished ones. One per invocation (see Runner); no state is shared between two. */
export interface Tracer {
  /** True when spans are recorded and exported. */
  readonly recording: boolean;
  /**
   * Whether this invocation is its host's first (a cold start), when the adapter knows: set before the invocation,
   * its span carries it as `faas.coldstart`.
   */
  coldStart: boolean | undefined;
  /**
   * A span of `kind`, child of the context `metadata` carries (`traceparent`, `tracestate`; a new trace without a
   * valid one). A client or producer span then puts its own context in `metadata`, for the next hop. Undefined when
   * nothing is recorded: a caller that asked not to be sampled, or a tracer that does not record.
   */
  start(name: string, kind: SpanKind, metadata: Metadata, info: SpanInfo): Span | undefined;
  /** Sends the finished spans, waiting at most `ms` (a collector that is down never holds the host up). Never rejects. */
  flush(ms: number): Promise<void>;
  /** Runs the recording path once and keeps nothing: a host that waits for its invocation calls it meanwhile. */
  warmUp?(): void;
}

/** Makes the tracer of each invocation of function `service` (runtime/plugins/resolve.ts `tracingOf`). */
export type TracerFactory = (service: string) => Tracer;

/** How long a host waits for its spans to be sent, at most, before it ends anyway. */
export const FLUSH_BOUND = 1500;

/** A tracer that records nothing: a `traceparent` that came in goes on unchanged (see PROPAGATED). */
export function nonRecordingTracer(): Tracer {
  return { recording: false, coldStart: undefined, start: () => undefined, flush: async () => {} };
}
