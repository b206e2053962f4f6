/**
 * The tracer that records: spans as plain data, with ids of their own, kept until a flush hands them to the
 * exporter (loaded then, the first time). Only a host that exports traces carries this module
 * (runtime/plugins/resolve.ts `tracingOf`); a bundle without an exporter leaves it out.
 */
import { headers, Metadata } from './metadata.js';
import { formatTraceparent, isSampled, parseTraceparent, type SpanContext } from './trace-context.js';
import type { Span, SpanData, SpanExporter, SpanInfo, SpanKind, SpanOutcome, Tracer } from './trace.js';

/** Finished spans a tracer keeps before a flush, at most: a host that never flushes must not grow without bound. */
const MAX_PENDING = 2048;

/** A sampled parent for `warmUp`'s spans. */
const WARM_UP_PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

/** The clock of span times: the performance clock is finer than Date.now(). */
function now(): number {
  return typeof performance === 'object' ? performance.timeOrigin + performance.now() : Date.now();
}

const HEX = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  if (buf.every((b) => b === 0)) buf[bytes - 1] = 1;
  let out = '';
  for (const b of buf) out += HEX[b];
  return out;
}

/** A new trace id: 16 random bytes in hex, never all zero. */
export function newTraceId(): string {
  return randomHex(16);
}

/** A new span id: 8 random bytes in hex, never all zero. */
export function newSpanId(): string {
  return randomHex(8);
}

class RecordingSpan implements Span {
  readonly #start = now();
  #ended = false;

  constructor(
    readonly tracer: RecordingTracer,
    readonly name: string,
    readonly kind: SpanKind,
    readonly context: SpanContext,
    readonly parent: (SpanContext & { remote: boolean }) | undefined,
    readonly info: SpanInfo,
  ) {}

  get traceparent(): string {
    return formatTraceparent(this.context);
  }

  end(status = 200, error?: SpanOutcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.tracer.finished({
      name: this.name,
      kind: this.kind,
      context: this.context,
      ...(this.parent ? { parent: this.parent } : {}),
      start: this.#start,
      end: now(),
      info: { ...this.info, status: error?.code ?? status },
      ...(error ? { error } : {}),
    });
  }

  track<T>(work: Promise<T>): Promise<T> {
    work.then(
      () => this.end(),
      (err: unknown) => this.end(undefined, outcomeOf(err)),
    );
    return work;
  }
}

/** A rejection as a span's outcome: a MicroError's code and detail, else a 500 with the message. */
function outcomeOf(err: unknown): SpanOutcome {
  const e = err as { code?: unknown; detail?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'number' ? e.code : 500;
  return { code, detail: String(e?.detail ?? e?.message ?? err) };
}

export interface RecordingTracerOptions {
  /** Loads the exporter, the first time there are spans to send. */
  exporter: () => Promise<SpanExporter>;
}

/** Records spans and sends them through the exporter on `flush`. See Tracer. */
export class RecordingTracer implements Tracer {
  readonly recording = true;
  coldStart: boolean | undefined;
  readonly #exporter: () => Promise<SpanExporter>;
  #pending: SpanData[] = [];

  constructor(options: RecordingTracerOptions) {
    this.#exporter = options.exporter;
  }

  /**
   * Runs the recording path once, with spans that are thrown away: Node loads the clock and the random source lazily
   * (perf_hooks, webcrypto: 1-10 ms on a busy machine) and V8 compiles each function on its first run, so a process
   * that waits for its invocation pays that before it comes rather than in front of it (the trace bench measures it).
   */
  warmUp(): void {
    const metadata = new Metadata({ [headers.traceparent]: WARM_UP_PARENT });
    for (let i = 0; i < 2; i++) {
      this.start('warm-up', 'server', metadata, {})?.end();
      this.start('warm-up', 'client', metadata, {})?.end(500, { code: 500, detail: 'warm-up' });
    }
    this.#pending = [];
  }

  start(name: string, kind: SpanKind, metadata: Metadata, info: SpanInfo): Span | undefined {
    const parent = parseTraceparent(metadata.get(headers.traceparent), metadata.get(headers.tracestate));
    if (parent && !isSampled(parent)) return undefined;
    const invocation = kind === 'server' || kind === 'consumer';
    // An invocation's span says whether it was a cold start.
    if (invocation && this.coldStart !== undefined) info = { ...info, coldStart: this.coldStart };
    const context: SpanContext = {
      traceId: parent?.traceId ?? newTraceId(),
      spanId: newSpanId(),
      flags: parent ? parent.flags : 1,
      ...(parent?.state ? { state: parent.state } : {}),
    };
    const span = new RecordingSpan(this, name, kind, context, parent && { ...parent, remote: invocation }, info);
    if (!invocation) metadata.set(headers.traceparent, span.traceparent);
    return span;
  }

  /** Called by a span when it ends. */
  finished(span: SpanData): void {
    if (this.#pending.length < MAX_PENDING) this.#pending.push(span);
  }

  async flush(ms: number): Promise<void> {
    if (this.#pending.length === 0) return;
    const spans = this.#pending;
    this.#pending = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const sent = this.#exporter().then((e) => e.export(spans));
    await Promise.race([sent, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).catch(() => {});
    clearTimeout(timer);
  }
}
