/**
 * The OpenTelemetry plugin's descriptor: spans sent over OTLP/HTTP with OpenTelemetry's own exporter, when the
 * environment names an endpoint the way OpenTelemetry defines it (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_ENDPOINT`). Without one, nothing of it is loaded, and a bundle built without one does not
 * carry it at all.
 */
import type { Env } from '../../core/config.js';
import type { ExporterPlugin } from '../../core/plugin.js';
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
  create: async (context, service) => (await import('./exporter.js')).createOtlpExporter(context.env, service),
};
