/**
 * Spans sent with OpenTelemetry's own OTLP/HTTP exporter. Core records spans as plain data (runtime/core/trace.ts);
 * here each becomes the `ReadableSpan` the exporter reads, with the function's resource. OpenTelemetry's packages are
 * imported when the first spans are sent (a bundle that runs on this machine imports them from micro-fn's own
 * node_modules), never before.
 */
import type { HrTime, SpanContext as OtelSpanContext } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Env } from '../../core/config.js';
import type { SpanData, SpanExporter, SpanKind } from '../../core/trace.js';
import { FLUSH_BOUND } from '../../core/trace.js';
import type { SpanContext } from '../../core/trace-context.js';
import { exportHeaders, resourceAttributes, tracesEndpoint } from './settings.js';
import { attributesOf } from './attributes.js';

export { attributesOf };

/** OpenTelemetry's SpanKind numbers (api's enum), so the mapping needs nothing loaded. */
const KIND: Record<SpanKind, number> = { internal: 0, server: 1, client: 2, producer: 3, consumer: 4 };
/** api's SpanStatusCode: UNSET 0, ERROR 2. */
const UNSET = 0;
const ERROR = 2;

/** An exporter of the spans of function `service` to the OTLP endpoint `env` names. */
export async function createOtlpExporter(env: Env, service: string): Promise<SpanExporter> {
  const url = tracesEndpoint(env);
  if (!url) throw new Error('no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT (http://host:4318)');
  const [{ OTLPTraceExporter }, { defaultResource, resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const resource = defaultResource().merge(resourceFromAttributes(resourceAttributes(env, service)));
  const exporter = new OTLPTraceExporter({
    url,
    headers: exportHeaders(env),
    timeoutMillis: FLUSH_BOUND,
    // A one-shot process exits once its spans are sent: no idle connection to wait on or to keep.
    httpAgentOptions: { keepAlive: false },
  });
  return {
    export: (spans) =>
      new Promise<void>((resolve, reject) =>
        exporter.export(
          spans.map((s) => readable(s, resource)),
          (result) => (result.code === 0 ? resolve() : reject(result.error ?? new Error('the export failed'))),
        ),
      ),
  };
}

/** One finished span and its resource's own attributes (`service.name`, ...): spans of many functions in one batch. */
export interface ResourceSpan {
  readonly resource: Readonly<Record<string, string>>;
  readonly span: SpanData;
}

/** Sends spans of many resources at once; rejects when the collector did not take them. */
export interface ResourceSpanSender {
  export(items: readonly ResourceSpan[]): Promise<void>;
}

/** Resources kept made, at most: a host with more distinct ones makes them again. */
const MAX_RESOURCES = 256;

/**
 * An exporter of the spans of many functions (serve's, which exports for the processes it runs) to the OTLP endpoint
 * `env` names, each request waiting `timeoutMillis` at most, over kept-alive connections.
 */
export async function createOtlpSender(env: Env, timeoutMillis: number): Promise<ResourceSpanSender> {
  const url = tracesEndpoint(env);
  if (!url) throw new Error('no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT (http://host:4318)');
  const [{ OTLPTraceExporter }, { defaultResource, resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const base = defaultResource();
  const resources = new Map<string, Resource>();
  const resourceOf = (attributes: Readonly<Record<string, string>>): Resource => {
    const key = JSON.stringify(attributes);
    let resource = resources.get(key);
    if (!resource) {
      if (resources.size >= MAX_RESOURCES) resources.clear();
      resource = base.merge(resourceFromAttributes({ ...attributes }));
      resources.set(key, resource);
    }
    return resource;
  };
  const exporter = new OTLPTraceExporter({ url, headers: exportHeaders(env), timeoutMillis });
  return {
    export: (items) =>
      new Promise<void>((resolve, reject) =>
        exporter.export(
          // The exporter groups spans by resource object: one per distinct set of attributes.
          items.map((i) => readable(i.span, resourceOf(i.resource))),
          (result) => (result.code === 0 ? resolve() : reject(result.error ?? new Error('the export failed'))),
        ),
      ),
  };
}

/** The ReadableSpan OpenTelemetry's exporters read, of one finished span. */
function readable(span: SpanData, resource: Resource): ReadableSpan {
  const context = otelContext(span.context, false);
  const start = hrTime(span.start);
  const end = hrTime(span.end);
  return {
    name: span.name,
    kind: KIND[span.kind],
    spanContext: () => context,
    ...(span.parent ? { parentSpanContext: otelContext(span.parent, span.parent.remote) } : {}),
    startTime: start,
    endTime: end,
    duration: hrTime(span.end - span.start),
    status:
      span.error === undefined ? { code: UNSET } : { code: ERROR, message: `${span.error.code} ${span.error.detail}` },
    attributes: attributesOf(span),
    links: [],
    events: [],
    ended: true,
    resource,
    instrumentationScope: { name: 'micro-fn' },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}

function otelContext(context: SpanContext, isRemote: boolean): OtelSpanContext {
  return { traceId: context.traceId, spanId: context.spanId, traceFlags: context.flags, isRemote };
}

/** Milliseconds (fractions kept) as OpenTelemetry's [seconds, nanoseconds]. */
function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6))];
}
