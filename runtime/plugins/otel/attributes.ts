/**
 * What a span says, named as OpenTelemetry's semantic conventions name it: shared by the exporter of OpenTelemetry's
 * packages (exporter.ts) and the fetch exporter of the Web targets (fetch-exporter.ts). No package.
 */
import type { SpanData } from '../../core/trace.js';

/** Attribute values as spans carry them. */
export type Attributes = Record<string, string | number | boolean>;

/**
 * A span's info named as OpenTelemetry's semantic conventions do: FaaS (`faas.*`) on an invocation's span, RPC
 * (`rpc.*`) on a request's, messaging (`messaging.*`) on a message's; micro-fn's own under `micro.*`.
 */
export function attributesOf(span: Pick<SpanData, 'kind' | 'info'>): Attributes {
  const { kind, info } = span;
  const out: Attributes = {};
  const invocation = kind === 'server' || kind === 'consumer';
  if (invocation) {
    if (info.function !== undefined) out['faas.name'] = info.function;
    if (info.id !== undefined) out['faas.invocation_id'] = info.id;
    if (info.coldStart !== undefined) out['faas.coldstart'] = info.coldStart;
    out['faas.trigger'] = info.topic !== undefined ? 'pubsub' : 'http';
  }
  if (info.endpoint !== undefined) {
    out['rpc.system'] = 'micro';
    if (info.service !== undefined) out['rpc.service'] = info.service;
    out['rpc.method'] = info.endpoint;
  }
  if (info.topic !== undefined) {
    out['messaging.destination.name'] = info.topic;
    out['messaging.operation.type'] = kind === 'producer' ? 'send' : 'process';
    if (info.id !== undefined && kind === 'consumer') out['messaging.message.id'] = info.id;
  }
  if (info.attempt !== undefined) out['micro.attempt'] = info.attempt;
  if (info.status !== undefined) out['micro.status'] = info.status;
  if (!invocation && info.function !== undefined) out['micro.from'] = info.function;
  return out;
}
