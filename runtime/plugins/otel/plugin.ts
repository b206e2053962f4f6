/**
 * The OpenTelemetry plugin's descriptor: spans sent over OTLP/HTTP with OpenTelemetry's own exporter, when the
 * environment names an endpoint the way OpenTelemetry defines it (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_ENDPOINT`). Without one, nothing of it is loaded, and a bundle built without one does not
 * carry it at all.
 */
import type { Env } from '../../core/config.js';
import type { ExporterPlugin } from '../../core/plugin.js';
import { RecordingTracer } from '../../core/trace-recorder.js';
import { tracesEndpoint } from './settings.js';

/** Whether `env` asks for spans over OTLP: an endpoint, and neither OTEL_SDK_DISABLED nor OTEL_TRACES_EXPORTER=none. */
function enabled(env: Env): boolean {
  return tracesEndpoint(env) !== undefined;
}

export const otlpExporter: ExporterPlugin = {
  kind: 'exporter',
  name: 'otlp',
  summary: 'spans over OTLP/HTTP (JSON) with OpenTelemetry, to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT',
  platforms: ['node'],
  packages: {
    '@opentelemetry/api': {},
    '@opentelemetry/resources': {},
    '@opentelemetry/sdk-trace-base': {},
    '@opentelemetry/exporter-trace-otlp-http': {},
  },
  enabled,
  tracer: (exporter) => new RecordingTracer({ exporter }),
  create: async (context, service) => (await import('./exporter.js')).createOtlpExporter(context.env, service),
};

/**
 * The Web targets' (Cloudflare Workers, Deno): the same spans as OTLP/HTTP JSON sent with `fetch`, no package (the
 * Node exporter does not run there, and a Worker's bundle has a size budget). Carried only by a bundle built for an
 * endpoint.
 */
export const otlpFetchExporter: ExporterPlugin = {
  kind: 'exporter',
  name: 'otlp',
  summary: 'spans over OTLP/HTTP (JSON) with fetch, to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT',
  platforms: ['web'],
  packages: {},
  enabled,
  tracer: (exporter) => new RecordingTracer({ exporter }),
  create: async (context, service) => (await import('./fetch-exporter.js')).createFetchExporter(context.env, service),
};
