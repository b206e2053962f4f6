/**
 * Spans over OTLP/HTTP JSON with nothing but `fetch`: the exporter of the Web targets (Cloudflare Workers, Deno),
 * where OpenTelemetry's Node packages do not run and every byte of the bundle counts. It writes what
 * exporter-trace-otlp-http writes (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding: hex ids, times
 * as nanosecond strings, SpanKind and status numbers), one request per flush. Only a bundle built for an OTLP
 * endpoint carries it. No package, no node: import.
 */
import type { Env } from '../../core/config.js';
import type { SpanData, SpanExporter, SpanKind } from '../../core/trace.js';
import { attributesOf } from './attributes.js';
import { exportHeaders, resourceAttributes, tracesEndpoint } from './settings.js';

/** OTLP's SpanKind: INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5. */
const KIND: Record<SpanKind, number> = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean };

/** An exporter of the spans of function `service` to the OTLP endpoint `env` names, with `fetch`. */
export function createFetchExporter(env: Env, service: string): SpanExporter {
  const url = tracesEndpoint(env);
  if (!url) throw new Error('no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT (https://host:4318)');
  const headers = { ...exportHeaders(env), 'content-type': 'application/json' };
  const resource = { attributes: keyValues(resourceAttributes(env, service)) };
  return {
    async export(spans) {
      const body = JSON.stringify({
        resourceSpans: [{ resource, scopeSpans: [{ scope: { name: 'micro-fn' }, spans: spans.map(otlpSpan) }] }],
      });
      const response = await fetch(url, { method: 'POST', headers, body });
      // Read to the end: an unread body holds the connection (and, on Workers, the event).
      await response.arrayBuffer().catch(() => {});
      if (!response.ok) throw new Error(`the OTLP collector at ${url} answered ${response.status}`);
    },
  };
}

function otlpSpan(span: SpanData) {
  return {
    traceId: span.context.traceId,
    spanId: span.context.spanId,
    ...(span.context.state ? { traceState: span.context.state } : {}),
    ...(span.parent ? { parentSpanId: span.parent.spanId } : {}),
    flags: span.context.flags,
    name: span.name,
    kind: KIND[span.kind],
    startTimeUnixNano: nanos(span.start),
    endTimeUnixNano: nanos(span.end),
    attributes: keyValues(attributesOf(span)),
    // UNSET 0, ERROR 2, as OpenTelemetry's exporters send a span that did not fail.
    status: span.error ? { code: 2, message: `${span.error.code} ${span.error.detail}` } : { code: 0 },
  };
}

/** Epoch milliseconds (fractions kept) as nanoseconds in a decimal string: past 2^53, so not as a Number. */
function nanos(ms: number): string {
  const whole = Math.floor(ms);
  const fraction = Math.min(999_999, Math.round((ms - whole) * 1e6));
  return `${whole}${String(fraction).padStart(6, '0')}`;
}

function keyValues(attributes: Record<string, string | number | boolean>): { key: string; value: AnyValue }[] {
  return Object.entries(attributes).map(([key, v]) => ({ key, value: anyValue(v) }));
}

function anyValue(v: string | number | boolean): AnyValue {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}
