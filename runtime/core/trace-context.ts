/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate` headers, parsed
 * and formatted here, and the ids of traces and spans. Web-standard APIs only; nothing here throws on what a
 * caller sent: a header that is not a valid traceparent is as good as none.
 */

/** The header names, lower case as Metadata keeps them. */
export const traceHeaders = { parent: 'traceparent', state: 'tracestate' } as const;

/** Where a span sits in its trace, as the next hop learns it. */
export interface SpanContext {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lower-case hex digits, not all zero. */
  readonly spanId: string;
  /** Trace flags; bit 0 is `sampled`. */
  readonly flags: number;
  /** The vendors' `tracestate`, passed through as it came. */
  readonly state?: string;
}

/** version 00 is exactly this; a later version may add fields after a `-`. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^]*)?$/;
const ZERO_TRACE = /* @__PURE__ */ '0'.repeat(32);
const ZERO_SPAN = /* @__PURE__ */ '0'.repeat(16);
/** What a vendor must pass on at least (the spec's 512 characters); a longer tracestate is dropped, not cut. */
const MAX_STATE = 512;
/** Printable ASCII: what a list of `key=value` members may hold. */
const STATE_TEXT = /^[\x20-\x7e]*$/;

/**
 * The span context a `traceparent` (and `tracestate`) header carries, or undefined when it is absent or not valid
 * (a version of `ff`, an all-zero id, upper-case hex, extra fields on version 00, anything not a string). Never throws.
 */
export function parseTraceparent(traceparent: unknown, tracestate?: unknown): SpanContext | undefined {
  if (typeof traceparent !== 'string' || traceparent.length > 512) return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  const state =
    typeof tracestate === 'string' && tracestate.length <= MAX_STATE && STATE_TEXT.test(tracestate)
      ? tracestate.trim()
      : '';
  return { traceId: traceId!, spanId: spanId!, flags: parseInt(flags!, 16) & 0xff, ...(state ? { state } : {}) };
}

/** The `traceparent` header of `context` (version 00). */
export function formatTraceparent(context: SpanContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.flags & 0xff).toString(16).padStart(2, '0')}`;
}

/** True when the caller recorded its span and asks the next hop to record its own (the `sampled` flag). */
export function isSampled(context: SpanContext): boolean {
  return (context.flags & 1) === 1;
}
