/**
 * OpenTelemetry's environment variables, read as its SDK reads them
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/ and
 * https://opentelemetry.io/docs/specs/otel/protocol/exporter/), from whatever environment the host gives the
 * function (process.env, Lambda's, a Worker's bindings). No package, no I/O.
 */
import type { Env } from '../../core/config.js';

/**
 * Where spans go: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else OTEL_EXPORTER_OTLP_ENDPOINT with `/v1/traces`
 * appended. Undefined when neither is an http(s) URL, or OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none.
 */
export function tracesEndpoint(env: Env): string | undefined {
  if (
    String(env.OTEL_SDK_DISABLED ?? '')
      .trim()
      .toLowerCase() === 'true'
  )
    return undefined;
  const exporters = String(env.OTEL_TRACES_EXPORTER ?? 'otlp').toLowerCase();
  if (!exporters.split(',').some((e) => e.trim() === 'otlp')) return undefined;
  const own = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (own) return isHttp(own) ? own : undefined;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base || !isHttp(base)) return undefined;
  return `${base.replace(/\/+$/, '')}/v1/traces`;
}

function isHttp(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

/** `key=value,key2=value2` with percent-encoded values (W3C Baggage's form), as OTEL_RESOURCE_ATTRIBUTES and
 * OTEL_EXPORTER_OTLP_HEADERS hold them. A member that does not parse is skipped. */
export function keyValues(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const member of (text ?? '').split(',')) {
    const at = member.indexOf('=');
    if (at <= 0) continue;
    const key = member.slice(0, at).trim();
    try {
      const value = decodeURIComponent(member.slice(at + 1).trim());
      if (key) out[key] = value;
    } catch {
      // not percent-encoded properly: skipped, as the SDK does
    }
  }
  return out;
}

/** The headers sent with each export: OTEL_EXPORTER_OTLP_HEADERS, then OTEL_EXPORTER_OTLP_TRACES_HEADERS over them. */
export function exportHeaders(env: Env): Record<string, string> {
  return { ...keyValues(env.OTEL_EXPORTER_OTLP_HEADERS), ...keyValues(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) };
}

/**
 * The resource's attributes: OTEL_RESOURCE_ATTRIBUTES, with `service.name` from OTEL_SERVICE_NAME, else from those
 * attributes, else the function's name.
 */
export function resourceAttributes(env: Env, service: string): Record<string, string> {
  const attributes = keyValues(env.OTEL_RESOURCE_ATTRIBUTES);
  attributes['service.name'] = env.OTEL_SERVICE_NAME?.trim() || attributes['service.name'] || service;
  return attributes;
}

/** The OTEL_* variables of `env`: what a host (micro-fn serve) hands on to the functions it runs. */
export function otelEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('OTEL_') && v !== undefined) out[k] = v;
  return out;
}

/**
 * Where and how `env` sends spans, as one string (the endpoint and its headers), or undefined when it sends none:
 * two environments with the same key send to the same place. serve hands its key to its functions (adapters/local
 * ipc.ts SPANS_ENV); a function whose own key matches sends its spans to serve rather than exporting them itself.
 */
export function spanSinkKey(env: Env): string | undefined {
  const url = tracesEndpoint(env);
  if (!url) return undefined;
  const headers = Object.entries(exportHeaders(env)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return headers.length === 0 ? url : `${url} ${JSON.stringify(headers)}`;
}
