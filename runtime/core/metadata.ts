/**
 * Metadata: string key/value pairs that travel with a request and with its reply. Keys are case-insensitive
 * (they ride in HTTP and NATS headers); they are kept in lower case.
 */
export class Metadata implements Iterable<[string, string]> {
  readonly #map = new Map<string, string>();

  constructor(init?: MetadataInit) {
    if (init) this.merge(init);
  }

  get(key: string): string | undefined {
    return this.#map.get(key.toLowerCase());
  }

  set(key: string, value: string): this {
    this.#map.set(key.toLowerCase(), String(value));
    return this;
  }

  has(key: string): boolean {
    return this.#map.has(key.toLowerCase());
  }

  delete(key: string): boolean {
    return this.#map.delete(key.toLowerCase());
  }

  get size(): number {
    return this.#map.size;
  }

  /** Copies every pair of `init` in, replacing keys that exist. */
  merge(init: MetadataInit): this {
    const entries =
      init instanceof Metadata || Symbol.iterator in Object(init)
        ? (init as Iterable<[string, string]>)
        : Object.entries(init);
    for (const [k, v] of entries) if (v !== undefined) this.set(k, v);
    return this;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.#map.entries();
  }

  toJSON(): Record<string, string> {
    return Object.fromEntries(this.#map);
  }
}

export type MetadataInit = Metadata | Iterable<[string, string]> | Record<string, string | undefined>;

/** Header names micro-fn gives meaning to. Lower case, as Metadata keeps them. */
export const headers = {
  service: 'micro-service',
  endpoint: 'micro-endpoint',
  id: 'micro-id',
  error: 'micro-error',
  fromService: 'micro-from-service',
  namespace: 'micro-namespace',
  /** Milliseconds left before the caller gives up; relative, so clocks need not agree across hosts. */
  timeout: 'micro-timeout',
  traceId: 'micro-trace-id',
  /** W3C Trace Context: the caller's span, and the vendors' state passed along with it. */
  traceparent: 'traceparent',
  tracestate: 'tracestate',
  topic: 'micro-topic',
  authorization: 'authorization',
  contentType: 'content-type',
} as const;

/** Request metadata a handler's outgoing calls carry on to the next hop. */
export const PROPAGATED = [
  'micro-namespace',
  'authorization',
  'micro-trace-id',
  // Passed on as they came unless the invocation records a span: then the client's span is the next hop's parent.
  'traceparent',
  'tracestate',
] as const; // names as text, not read off `headers`: a bundle that never calls out then drops the list

/**
 * Caps the deadline `metadata` carries (`Micro-Timeout`, milliseconds) at `ms`: what a host gives an invocation
 * (Lambda's remaining time) when the caller asked for more, or for nothing. Returns `metadata`.
 */
export function limitTimeout(metadata: Metadata, ms: number): Metadata {
  const asked = Number(metadata.get(headers.timeout));
  const limit = Number.isFinite(asked) && asked > 0 ? Math.min(asked, ms) : ms;
  return metadata.set(headers.timeout, String(Math.max(1, Math.floor(limit))));
}
