import type { Broker } from './broker.js';
import { jsonCodec, type Codec } from './codec.js';
import { MicroError, errors, toMicroError } from './errors.js';
import { newId } from './id.js';
import { Metadata, headers, type MetadataInit } from './metadata.js';
import type { NodeRecord, Registry } from './registry.js';
import { random, type Selector } from './selector.js';
import { schemeOf, type Transport, type TransportRequest, type TransportResponse } from './transport.js';
import type { Span, Tracer } from './trace.js';
import { UnreachableNodes } from './unreachable-nodes.js';
import { NO_STREAMS } from './build-constants.js';
import { EncodedRequest, Outbox, StreamCall, notAgain, type ClientStream } from './client-stream.js';
import { STORE_ERROR, type StoreBackend } from './store.js';
import { SYNC_ERROR, type SyncBackend } from './sync.js';
import type { ConfigBackend } from './function-config.js';

/** The stream machinery; a bundle built without streams carries none of it (build-constants.ts). */
const streaming = globalThis.__MICRO_FN_NO_STREAMS__ ? undefined : { EncodedRequest, Outbox, StreamCall, notAgain };

export interface ClientOptions {
  /** Where services are looked up. Needed unless every call names an `address`. */
  registry?: Registry;
  /** Transports by scheme; the node address picks one. */
  transports?: Transport[];
  /** Needed for `publish`. */
  broker?: Broker;
  codec?: Codec;
  selector?: Selector;
  /** Milliseconds per call, all attempts included. Default 5000. */
  timeout?: number;
  /**
   * Further attempts after a retryable error: one that provably never reached a handler (see Client). A node that
   * could not be reached at all costs none of them while other nodes are left. Default 1.
   */
  retries?: number;
  /** Milliseconds to wait before attempt `n` (1-based retry count). Default: 50·2ⁿ⁻¹ with jitter, at most 1 s. */
  backoff?: (retry: number) => number;
  /** Sent as `Micro-From-Service`. */
  fromService?: string;
  /** Sent with every call and publish. */
  metadata?: MetadataInit;
  /**
   * Milliseconds a service lookup is reused, so a long-running caller does not ask the registry (a NATS KV read,
   * a folder of files) on every call. Default 10 000; 0 asks every time. A lookup is dropped at once when a call
   * to one of its nodes fails with a retryable error, so the retry sees the registry as it is.
   */
  cacheTtl?: number;
  /**
   * Milliseconds a node that could not be reached (a refused connection, no responders) is skipped while the
   * service has other nodes: its registry entry outlives it until the entry's TTL runs out. Default 60 000 (the
   * default `MICRO_REGISTER_TTL`); 0 never skips. A node that answers again is forgotten at once.
   */
  unreachableFor?: number;
  /**
   * Supplies registry, broker and transports on the first call or publish instead of up front, so a one-shot
   * process whose handler never calls out never loads them. Give a memoised function: clients made with
   * `with()` share it.
   */
  load?: () => Promise<Pick<ClientOptions, 'registry' | 'broker' | 'transports' | 'store' | 'sync' | 'config'>>;
  /** Opens the host's store plugin (`MICRO_STORE`) on first use: what a handler's `ctx.store` runs on. */
  store?: () => Promise<StoreBackend>;
  /** Opens the host's sync plugin (`MICRO_SYNC`) on first use: what a handler's `ctx.sync` runs on. */
  sync?: () => Promise<SyncBackend>;
  /** Opens the host's config plugin (`MICRO_CONFIG`) on first use: the `kv` layer of a handler's `ctx.config`. */
  config?: () => Promise<ConfigBackend>;
  /**
   * Records each call (a client span) and publish (a producer span), children of the `traceparent` in the metadata
   * it sends (a handler's client carries its invocation's), and sends the new span's context on instead. Without
   * one, a `traceparent` in the metadata goes on as it is.
   */
  tracer?: Tracer;
}

export interface RequestOptions {
  timeout?: number;
  /** Epoch milliseconds; wins over `timeout` when earlier. */
  deadline?: number;
  retries?: number;
  metadata?: MetadataInit;
  signal?: AbortSignal;
  /** Call this node address directly instead of looking the service up. */
  address?: string;
}

/** Options of `client.stream`. */
export interface StreamOptions extends RequestOptions {
  /**
   * Feed the request stream with the returned stream's `send()` and `close()` instead of an iterable (a bidi or
   * client stream whose messages are not known up front); the `request` argument is then ignored.
   */
  send?: boolean;
}

export interface PublishOptions {
  metadata?: MetadataInit;
}

/** A reply with the metadata the server sent back. */
export interface CallResult<T = unknown> {
  body: T;
  metadata: Metadata;
}

/** The node picked for an attempt; `others`: live nodes left untried besides it; `skipped`: it was being skipped. */
interface Choice {
  node: NodeRecord;
  others: number;
  skipped: boolean;
}

/** Unreachable nodes passed over in one call without spending a retry, at most: bounds a call over a long list. */
const MAX_SKIPS = 16;

const defaultBackoff = (retry: number) => Math.min(1000, 50 * 2 ** (retry - 1)) * (0.5 + Math.random() / 2);

/**
 * Calls services through the registry, the selector and the transport of each node's scheme.
 *
 * It sends a request again, to another node when there is one, only when the first attempt provably never reached
 * a handler, so no handler runs twice:
 * - a refusal marked NOT_STARTED: a one-shot instance that had already taken its invocation, a listener closing or
 *   full (503), a queue that did not take or keep the call (429);
 * - a connection that was never made (refused, no such host; NATS: no responders). Such a node is skipped at
 *   once, without spending a retry while other nodes are left, and by later calls for `unreachableFor`.
 *
 * Never after a 408, a 500, a 502 or 504, any status a handler or a proxy sent, or a connection lost once the
 * request may have been sent: those errors reach the caller as they are.
 * @example
 * const client = createClient({ registry, transports: [createHttpTransport()] });
 * const { message } = await client.call('helloworld', 'Greeter.Hello', { name: 'Ada' });
 */
export class Client {
  #options: ClientOptions;
  readonly #transports = new Map<string, Transport>();
  readonly #codec: Codec;
  readonly #selector: Selector;

  constructor(options: ClientOptions = {}) {
    this.#options = options;
    this.#addTransports(options.transports);
    this.#codec = options.codec ?? jsonCodec;
    this.#selector = options.selector ?? random();
    this.#unreachable = new UnreachableNodes(options.unreachableFor ?? 60_000);
  }

  #addTransports(transports: Transport[] | undefined): void {
    for (const t of transports ?? []) for (const s of t.schemes) this.#transports.set(s, t);
  }

  /** Applies what `load` supplies, once. */
  async #ready(): Promise<void> {
    const load = this.#options.load;
    if (!load) return;
    const loaded = await load();
    const o = this.#options;
    const transports = [...(o.transports ?? []), ...(loaded.transports ?? [])];
    this.#options = {
      ...o,
      load: undefined,
      registry: o.registry ?? loaded.registry,
      broker: o.broker ?? loaded.broker,
      store: o.store ?? loaded.store,
      sync: o.sync ?? loaded.sync,
      config: o.config ?? loaded.config,
      transports,
    };
    this.#addTransports(loaded.transports);
  }

  /** The host's store plugin, opened on first use (`ctx.store` runs on it); a 501 when the host has none. */
  async storeBackend(): Promise<StoreBackend> {
    if (this.#options.load) await this.#ready();
    const open = this.#options.store;
    if (!open)
      throw new MicroError(
        STORE_ERROR,
        501,
        'no store is configured here: set MICRO_STORE (memory, local, nats, cloudflare-kv)',
      );
    return open();
  }

  /** The host's sync plugin, opened on first use (`ctx.sync` runs on it); a 501 when the host has none. */
  async syncBackend(): Promise<SyncBackend> {
    if (this.#options.load) await this.#ready();
    const open = this.#options.sync;
    if (!open)
      throw new MicroError(SYNC_ERROR, 501, 'no sync is configured here: set MICRO_SYNC (memory, local, nats)');
    return open();
  }

  /** The host's config plugin, opened on first use; undefined when it has none (`ctx.config` then has no `kv` layer). */
  async configBackend(): Promise<ConfigBackend | undefined> {
    if (this.#options.load) await this.#ready();
    return this.#options.config?.();
  }

  /** A client like this one that also sends `metadata` and never waits past `deadline`. */
  with(extra: { metadata?: MetadataInit; fromService?: string; deadline?: number }): Client {
    const metadata = new Metadata(this.#options.metadata).merge(extra.metadata ?? {});
    const child = new Client({
      ...this.#options,
      metadata,
      fromService: extra.fromService ?? this.#options.fromService,
    });
    child.#deadline = extra.deadline;
    child.#lookups = this.#lookups;
    child.#unreachable = this.#unreachable;
    return child;
  }

  #deadline: number | undefined;
  /** Service lookups, shared with the clients made by `with()`. */
  #lookups = new Map<string, { nodes: NodeRecord[]; expires: number }>();
  /** Nodes found unreachable, skipped for a while; shared with the clients made by `with()`. */
  #unreachable: UnreachableNodes;

  /** Calls `endpoint` of `service` and resolves with the decoded reply. */
  async call<T = unknown>(service: string, endpoint: string, request: unknown, options?: RequestOptions): Promise<T> {
    return (await this.request<T>(service, endpoint, request, options)).body;
  }

  /** Like `call`, with the reply's metadata too (go-micro issue #574: its gRPC client could not read it). */
  async request<T = unknown>(
    service: string,
    endpoint: string,
    request: unknown,
    options: RequestOptions = {},
  ): Promise<CallResult<T>> {
    if (this.#options.load) await this.#ready();
    const timeout = options.timeout ?? this.#options.timeout ?? 5000;
    let deadline = Date.now() + timeout;
    if (options.deadline !== undefined) deadline = Math.min(deadline, options.deadline);
    if (this.#deadline !== undefined) deadline = Math.min(deadline, this.#deadline);
    const asked = options.retries ?? this.#options.retries ?? 1;
    const retries = Number.isFinite(asked) ? Math.max(0, Math.floor(asked)) : 1; // NaN would mean "until the deadline"

    const metadata = new Metadata(this.#options.metadata);
    if (options.metadata) metadata.merge(options.metadata);
    if (this.#options.fromService) metadata.set(headers.fromService, this.#options.fromService);
    const tracer = this.#options.tracer;
    const span = tracer?.recording
      ? tracer.start(`${service}/${endpoint}`, 'client', metadata, {
          function: this.#options.fromService,
          service,
          endpoint,
        })
      : undefined;
    const result = this.#request<T>(service, endpoint, request, options, metadata, deadline, retries);
    return span ? span.track(result) : result;
  }

  async #request<T>(
    service: string,
    endpoint: string,
    request: unknown,
    options: RequestOptions,
    metadata: Metadata,
    deadline: number,
    retries: number,
  ): Promise<CallResult<T>> {
    const base: TransportRequest = {
      id: metadata.get(headers.id) ?? newId(),
      service,
      endpoint,
      contentType: this.#codec.contentType,
      body: this.#codec.encode(request),
      metadata,
    };
    return this.#attempts(service, options, deadline, retries, async (node) => {
      const response = await this.#send(node, base, deadline, options.signal);
      if (response.error) throw response.error;
      if (response.stream) {
        void response.stream[Symbol.asyncIterator]().return?.();
        throw errors.badRequest(service, `${endpoint} streams its reply: call it with client.stream()`, {
          retryable: false,
        });
      }
      return { body: this.#codec.decode(response.body) as T, metadata: response.metadata };
    });
  }

  /**
   * Opens a stream to `endpoint` of `service`: a server stream when `request` is a value, a client or bidi stream
   * when it is an AsyncIterable (each value one message; or `{ send: true }` and the returned `send`/`close`).
   * Iterate the result for the replies; see ClientStream.
   *
   * - Deadline: `timeout` (default: the client's) bounds the WHOLE stream, from the call to its last message; past
   *   it the stream ends with a 408 and the handler's signal fires. `timeout: Infinity` sets no bound of the caller's
   *   (the function's own timeout still holds).
   * - Retries: as for `call`, only a refusal that certainly ran nothing is sent again, and a request stream only
   *   before its first message was read: a stream whose request was sent is never sent again.
   * @example
   * for await (const { n } of client.stream<{ n: number }>('stream', 'Countdown.Count', { from: 3 })) console.log(n);
   * const [sum] = await Array.fromAsync(client.stream('stream', 'Numbers.Sum', numbers()));
   */
  stream<Res = unknown, Req = unknown>(
    service: string,
    endpoint: string,
    request: Req | AsyncIterable<Req> | undefined,
    options: StreamOptions = {},
  ): ClientStream<Res, Req> {
    if (!streaming) throw new MicroError(service, 500, NO_STREAMS);
    const controller = new AbortController();
    const signal = options.signal;
    const onAbort = () => controller.abort();
    if (signal?.aborted) controller.abort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    const outbox = options.send ? new streaming.Outbox() : undefined;
    const source = outbox ?? asyncIteratorOf(request);
    let span: Span | undefined;
    const opened = this.#openStream(
      service,
      endpoint,
      source ? undefined : request,
      source,
      options,
      controller,
      (s) => {
        span = s;
      },
    );
    const call = new streaming.StreamCall<Res, Req>(opened, this.#codec, outbox, () => controller.abort());
    // The client span (when the client records spans) lasts the whole stream.
    void call.end.then((end) => {
      signal?.removeEventListener('abort', onAbort);
      span?.end(end.error?.code ?? 200, end.error);
    });
    return call;
  }

  async #openStream(
    service: string,
    endpoint: string,
    request: unknown,
    source: AsyncIterator<unknown> | undefined,
    options: StreamOptions,
    controller: AbortController,
    started: (span: Span | undefined) => void,
  ): Promise<TransportResponse> {
    if (this.#options.load) await this.#ready();
    const timeout = options.timeout ?? this.#options.timeout ?? 5000;
    let deadline = Date.now() + timeout;
    if (options.deadline !== undefined) deadline = Math.min(deadline, options.deadline);
    if (this.#deadline !== undefined) deadline = Math.min(deadline, this.#deadline);
    const asked = options.retries ?? this.#options.retries ?? 1;
    const retries = Number.isFinite(asked) ? Math.max(0, Math.floor(asked)) : 1;
    const metadata = new Metadata(this.#options.metadata);
    if (options.metadata) metadata.merge(options.metadata);
    if (this.#options.fromService) metadata.set(headers.fromService, this.#options.fromService);
    const tracer = this.#options.tracer;
    if (tracer?.recording)
      started(
        tracer.start(`${service}/${endpoint}`, 'client', metadata, {
          function: this.#options.fromService,
          service,
          endpoint,
        }),
      );
    const encoded = source ? new streaming!.EncodedRequest(source, this.#codec) : undefined;
    const base: TransportRequest = {
      id: metadata.get(headers.id) ?? newId(),
      service,
      endpoint,
      contentType: this.#codec.contentType,
      body: encoded ? new Uint8Array(0) : this.#codec.encode(request ?? {}),
      metadata,
      ...(encoded ? { stream: encoded } : {}),
    };
    const withSignal = { ...options, signal: controller.signal };
    return this.#attempts(service, withSignal, deadline, retries, async (node) => {
      try {
        const response = await this.#send(node, base, deadline, controller.signal);
        if (response.error) throw response.error;
        return response;
      } catch (err) {
        throw encoded?.started ? streaming!.notAgain(toMicroError(err, service)) : err;
      }
    }).then(
      (response) => {
        // An error before the first message is a plain error reply: the caller's iteration throws it.
        if (response.error) void encoded?.return();
        return response;
      },
      (err: unknown) => {
        void encoded?.return();
        return {
          contentType: '',
          body: new Uint8Array(0),
          metadata: new Metadata(),
          error: toMicroError(err, service),
        };
      },
    );
  }

  /**
   * Runs `attempt` on a node, and again (to another node when there is one) after a retryable error while the
   * deadline and the retries allow; see the class comment for which errors those are.
   */
  async #attempts<R>(
    service: string,
    options: RequestOptions,
    deadline: number,
    retries: number,
    attempt: (node: NodeRecord) => Promise<R>,
  ): Promise<R> {
    // No timer or controller of our own: the transport enforces the deadline and watches the caller's signal.
    const signal = options.signal;
    const tried = new Set<string>();
    let retried = 0;
    for (let skipped = 0; ;) {
      let pick: Choice | undefined;
      try {
        if (signal?.aborted) throw abortError(service, signal);
        pick = options.address
          ? { node: { id: options.address, address: options.address, metadata: {} }, others: 0, skipped: false }
          : await this.#select(service, tried);
        tried.add(pick.node.id);
        const result = await attempt(pick.node);
        if (pick.skipped) this.#unreachable.delete(pick.node.id); // it answers again
        return result;
      } catch (err) {
        const error = signal?.aborted ? abortError(service, signal) : toMicroError(err, service);
        if (error.retryable) this.#lookups.delete(service); // a node may be gone: look again
        const left = deadline - Date.now();
        if (!error.retryable || left <= 0 || signal?.aborted)
          throw left <= 0 && error.retryable ? abortError(service) : error;
        if (error.unreachable && pick) {
          this.#unreachable.add(pick.node.id);
          // Nothing was sent: go to the next node at once, without spending a retry, while there is one.
          if (pick.others > 0 && skipped < MAX_SKIPS) {
            skipped++;
            continue;
          }
        }
        if (retried >= retries) throw error;
        retried++;
        await sleep(Math.min((this.#options.backoff ?? defaultBackoff)(retried), left), signal);
      }
    }
  }

  /**
   * The node for the next attempt: one not tried in this call and not found unreachable lately, else one not tried,
   * else any. `others` counts the nodes of the first kind left besides it.
   */
  async #select(service: string, tried: Set<string>): Promise<Choice> {
    const registry = this.#options.registry;
    if (!registry) throw errors.internal('micro-fn', 'the client has no registry: pass one, or call with an address');
    let nodes: NodeRecord[];
    const cached = this.#lookups.get(service);
    if (cached && cached.expires > Date.now()) nodes = cached.nodes;
    else {
      nodes = (await registry.getService(service)).flatMap((v) => v.nodes);
      const ttl = this.#options.cacheTtl ?? 10_000;
      if (ttl > 0 && nodes.length > 0) this.#lookups.set(service, { nodes, expires: Date.now() + ttl });
    }
    if (nodes.length === 0) throw errors.notFound('micro-fn', `service ${service} not found`);
    const unreachable = this.#unreachable;
    let untried = nodes;
    if (tried.size > 0) untried = nodes.filter((n) => !tried.has(n.id));
    let live = untried;
    if (unreachable.size > 0) live = untried.filter((n) => !unreachable.has(n.id));
    if (live.length > 0) return { node: this.#selector(service, live), others: live.length - 1, skipped: false };
    const node = this.#selector(service, untried.length > 0 ? untried : nodes);
    return { node, others: 0, skipped: unreachable.has(node.id) };
  }

  async #send(
    node: NodeRecord,
    base: TransportRequest,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<TransportResponse> {
    const transport = this.#transports.get(schemeOf(node.address));
    if (!transport) {
      throw errors.internal(
        'micro-fn',
        `no transport for "${schemeOf(node.address) || node.address}" addresses; configured: ${[...this.#transports.keys()].join(', ') || 'none'}`,
      );
    }
    const metadata = new Metadata(base.metadata);
    // A stream the caller bounds with no deadline (`timeout: Infinity`) sends none: the function's own timeout holds.
    if (Number.isFinite(deadline)) metadata.set(headers.timeout, String(Math.max(1, deadline - Date.now())));
    return transport.call(node, { ...base, metadata }, { deadline, signal });
  }

  /** Publishes `payload` (encoded with the codec) on `topic`. */
  async publish(topic: string, payload: unknown, options: PublishOptions = {}): Promise<void> {
    if (this.#options.load) await this.#ready();
    const broker = this.#options.broker;
    if (!broker) throw errors.internal('micro-fn', 'the client has no broker to publish with');
    const metadata = new Metadata(this.#options.metadata);
    if (options.metadata) metadata.merge(options.metadata);
    if (this.#options.fromService) metadata.set(headers.fromService, this.#options.fromService);
    metadata.set(headers.contentType, this.#codec.contentType);
    const tracer = this.#options.tracer;
    const info = { function: this.#options.fromService, topic };
    const span = tracer?.recording ? tracer.start(`${topic} publish`, 'producer', metadata, info) : undefined;
    const sent = broker.publish(topic, { headers: metadata.toJSON(), body: this.#codec.encode(payload) });
    await (span ? span.track(sent) : sent);
  }
}

/** Creates a Client. */
export function createClient(options: ClientOptions = {}): Client {
  return new Client(options);
}

/** The async iterator of `value` when it is an AsyncIterable (a request stream), else undefined. */
function asyncIteratorOf(value: unknown): AsyncIterator<unknown> | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const make = (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator];
  return typeof make === 'function' ? (make.call(value) as AsyncIterator<unknown>) : undefined;
}

function abortError(service: string, userSignal?: AbortSignal): MicroError {
  return userSignal?.aborted
    ? errors.timeout(service, 'request aborted', { retryable: false })
    : errors.timeout(service, 'request timed out', { retryable: false });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
