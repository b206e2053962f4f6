/**
 * The NATS listener: one connection, one NATS service (Services API: `$SRV.PING|INFO|STATS`) with an endpoint
 * per `Service.Method` on `micro.<service>.<Service.Method>`, and a `direct` endpoint on
 * `micro.<service>.<node id>.>` that the node address leads to (see address.ts).
 */
import type { Msg, NatsConnection, Service, ServiceMsg } from 'nats';
import {
  HEALTH_ENDPOINT,
  errors,
  isMicroError,
  headers as names,
  newId,
  notStarted,
  toMicroError,
  type Caller,
  type Listener,
  type Reply,
  type RequestHandler,
  type ServerRequest,
  type ServerResponse,
} from '../../core/index.js';
import {
  checkSubjectNames,
  endpointSubject,
  natsName,
  natsVersion,
  nodeAddress,
  nodeSubjectPrefix,
} from './address.js';
import { lazyConnection, within, type LazyConnection, type NatsConnections } from './connections.js';
import { errorReply, metadataOf, replyHeaders, type HeadersFactory } from './headers.js';
import { STREAM_HEADER, StreamOp, streamOp, type NatsStreamOptions } from './stream.js';
import { StreamLink } from './stream-link.js';

/** The service a listener announces: core's `ListenOptions.service`, with a description of its own. */
export interface NatsServiceInfo {
  name: string;
  /** go-micro style; a version that is not semver (`latest`) is announced as `0.0.0`, kept in metadata. */
  version?: string;
  /** `Service.Method` names: one NATS service endpoint each. Others still reach the handler by node subject. */
  endpoints?: readonly string[];
  description?: string;
  metadata?: Record<string, string>;
}

export interface NatsListenerOptions {
  /** The NATS server: `nats://[user:pass@]host:port`, several separated by commas. */
  address: string;
  service: NatsServiceInfo;
  /** Connection name shown by NATS monitoring when the listener is the one that opens it. Default `<service>`. */
  connectionName?: string;
  /** The pool shared with the other NATS plugins of the set (one connection per server); default one of its own. */
  connections?: NatsConnections;
  /** Milliseconds `close()` waits for in-flight replies before it closes the connection anyway. Default 2000. */
  closeTimeout?: number;
  /** Flow control and liveness of streams (stream.ts). */
  stream?: NatsStreamOptions;
}

const DEFAULT_CLOSE_TIMEOUT = 2000;
const ignore = (): void => {};
const EMPTY = new Uint8Array(0);
/** Request headers that are stream framing, not metadata. */
const FRAMING = new Set([STREAM_HEADER]);

/**
 * Serves requests that arrive on its subjects; every reply carries metadata and errors in headers (headers.ts).
 * `reply` resolves once the server has the reply (a flush: PING/PONG after the message). A message without a
 * reply subject is a publish, not a request: it never reaches the handler. Create it with createNatsListener.
 */
export class NatsListener implements Listener {
  readonly #handler: RequestHandler;
  readonly #options: NatsListenerOptions;
  readonly #name: string;
  #connection: LazyConnection | undefined;
  #nc: NatsConnection | undefined;
  #service: Service | undefined;
  #headers!: HeadersFactory;
  #inbox!: () => string;
  #address = '';
  #id = '';
  #pending = 0;
  #idle: (() => void) | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(handler: RequestHandler, options: NatsListenerOptions) {
    this.#handler = handler;
    this.#options = options;
    this.#name = options.service.name;
  }

  /** `nats://HOST:PORT/<service>/<node id>` once started. */
  get address(): string {
    return this.#address;
  }

  /** The NATS service instance id (`$SRV.*.<name>.<id>`), once started. */
  get id(): string {
    return this.#id;
  }

  /** Connects, adds the NATS service and its endpoints, and waits until the server has every subscription. */
  async start(): Promise<this> {
    const { service } = this.#options;
    const endpoints = [...new Set(service.endpoints ?? [])];
    checkSubjectNames(service.name, endpoints);
    const { address, connections, connectionName = service.name } = this.#options;
    const connection = (this.#connection = lazyConnection({ address, connections }, service.name, connectionName));
    const nc = (this.#nc = await connection.get());
    try {
      const { headers, createInbox } = await import('nats');
      this.#headers = headers;
      this.#inbox = () => createInbox();
      const metadata = {
        ...service.metadata,
        'micro-service': service.name,
        'micro-version': service.version ?? 'latest',
      };
      const svc = (this.#service = await nc.services.add({
        name: natsName(service.name),
        version: natsVersion(service.version),
        description: service.description,
        metadata,
      }));
      for (const endpoint of endpoints) {
        svc.addEndpoint(natsName(endpoint), {
          subject: endpointSubject(service.name, endpoint),
          metadata: { 'micro-endpoint': endpoint },
          handler: (err, msg) => {
            if (!err) this.#accept(msg, endpoint);
          },
        });
      }
      const id = (this.#id = svc.info().id);
      const prefix = `${nodeSubjectPrefix(service.name, id)}.`;
      svc.addEndpoint('direct', {
        subject: `${prefix}>`,
        metadata: { 'micro-endpoint': '*' },
        handler: (err, msg) => {
          if (!err) this.#accept(msg, msg.subject.slice(prefix.length));
        },
      });
      // Every SUB is on the server before the address is handed out: a call right after listen() is answered.
      await nc.flush();
      this.#address = nodeAddress(nc.getServer(), service.name, id);
      return this;
    } catch (err) {
      await connection.close(0);
      throw err;
    }
  }

  /**
   * Stops the NATS service (it unsubscribes, and tooling stops listing it), answers what already arrived, then gives
   * its share of the connection back: flushed, or drained when it was the last. Requests that reach it while it
   * closes get a retryable 503.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    if (!this.#nc) return;
    // Each step is bounded: with the server gone, a drain would wait for a reconnection that may never come.
    const limit = this.#options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT;
    await within(this.#service?.stop() ?? Promise.resolve(), limit);
    if (this.#pending > 0) await within(new Promise<void>((resolve) => (this.#idle = resolve)), limit);
    await this.#connection?.close(limit);
  }

  #accept(msg: ServiceMsg, endpoint: string): void {
    // Nobody waits for an answer: a publish, not a request. It must not use up a one-shot function.
    if (!msg.reply) return;
    const streamed = streamOp(msg.headers) === StreamOp.open;
    const metadata = metadataOf(msg.headers, streamed ? FRAMING : undefined);
    const request: ServerRequest = {
      id: metadata.get(names.id) || newId(),
      service: this.#name,
      endpoint,
      contentType: metadata.get(names.contentType) ?? 'application/json',
      body: msg.data,
      metadata,
      probe: endpoint === HEALTH_ENDPOINT,
    };
    if (this.#closing) {
      try {
        this.#send(
          msg,
          request.id,
          errorReply(notStarted(503, `${this.#name}: the listener is closing; try another instance`)),
        );
      } catch {
        // the connection is going away: the caller sees no responders or its deadline, both retryable or final
      }
      return;
    }
    // A request that streams: its messages come on this request's own subject, credit granted (so the caller sends
    // anything) only once the handler reads.
    let link: StreamLink | undefined;
    if (streamed) {
      link = this.#link(msg.reply);
      link.hold(); // until the reply is out
      request.stream = link.receive(true);
      request.caller = callerOf(link);
    }
    // Pending until answered, not until the handler returns: a one-shot function's handler returns only after the
    // function has stopped, and its stop closes this listener, which waits for what is pending.
    this.#pending++;
    let flushed: Promise<void> | undefined;
    const answer = (response: ServerResponse): Promise<void> => {
      flushed = this.#answer(msg, request.id, response, link);
      flushed.then(this.#answered, this.#answered);
      return flushed;
    };
    const reply: Reply = (response) =>
      flushed ? Promise.reject(new Error('reply was already called for this request')) : answer(response);
    let result: Promise<void>;
    try {
      result = Promise.resolve(this.#handler(request, reply));
    } catch (err) {
      result = Promise.reject(err);
    }
    // A handler that fails or returns without replying still answers its caller, as a 500.
    result
      .then(
        () => flushed ?? answer(errorReply(errors.internal(this.#name, 'the handler finished without a reply'))),
        (err: unknown) => flushed ?? answer(errorReply(toMicroError(err, this.#name))),
      )
      .catch(ignore);
  }

  /** One request answered (or its answer failed): close() waits until none is left. */
  readonly #answered = (): void => {
    if (--this.#pending === 0) this.#idle?.();
  };

  /**
   * Sends the reply. No flush per reply (a round trip to the server on the hot path): nats.js writes it at once,
   * and close() drains, so a one-shot function's reply is on the server before its process exits.
   */
  async #answer(msg: Msg, id: string, response: ServerResponse, link: StreamLink | undefined): Promise<void> {
    if (!response.stream) {
      try {
        this.#send(msg, id, response);
      } finally {
        if (link) this.#done(link);
      }
      return;
    }
    if (!link) {
      link = this.#link(msg.reply!);
      link.hold();
    }
    await this.#stream(msg, id, response, link).finally(() => this.#done(link));
  }

  /**
   * A streamed reply: its head (the metadata, `micro-stream: open`) to the request's reply subject, then its messages
   * as the caller grants credit. Resolves once the end is on the server, or the stream was cancelled (the caller
   * went away): only then may a one-shot function end.
   */
  async #stream(msg: Msg, id: string, response: ServerResponse, link: StreamLink): Promise<void> {
    const stream = response.stream!;
    let head;
    try {
      head = replyHeaders(this.#headers, id, response, this.#name) ?? this.#headers();
    } catch (err) {
      // Metadata that cannot be a header: the caller gets the 500 as a plain reply, and the stream is not read.
      stream[Symbol.asyncIterator]().return?.().catch(ignore);
      this.#send(msg, id, errorReply(toMicroError(err, this.#name)));
      return;
    }
    link.send(StreamOp.open, EMPTY, head);
    const outcome = await link.sendStream(stream);
    // The end is on the server before the reply counts as handed over (a one-shot process exits after it).
    if (outcome === 'ended' && !this.#nc!.isClosed())
      await within(this.#nc!.flush(), this.#options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT);
  }

  /** The reply is out: a request stream the handler no longer reads is cancelled, and the link lets go. */
  #done(link: StreamLink): void {
    link.receiver?.cancel();
    link.release();
  }

  /** One stream's link, answering to `remote` (the caller's inbox) from a fresh inbox of its own. */
  #link(remote: string): StreamLink {
    return new StreamLink({
      nc: this.#nc!,
      headers: this.#headers,
      local: this.#inbox(),
      remote,
      side: 'handler',
      id: this.#name,
      stream: this.#options.stream,
    });
  }

  #send(msg: Msg, id: string, response: ServerResponse): void {
    try {
      msg.respond(response.body, { headers: replyHeaders(this.#headers, id, response, this.#name) });
      return;
    } catch (err) {
      const nc = this.#nc!;
      if (nc.isClosed() || nc.isDraining())
        throw errors.unavailable(this.#name, 'the connection closed before the reply was sent', { cause: err });
      // Metadata that cannot be a header (a MicroError from replyHeaders), or a reply over the server's
      // max_payload: the caller learns why, as a 500.
      const error = isMicroError(err)
        ? err
        : (err as { code?: unknown }).code === 'MAX_PAYLOAD_EXCEEDED'
          ? errors.internal(
              this.#name,
              `the reply is larger than the NATS server's max_payload (${nc.info?.max_payload ?? '?'} bytes)`,
            )
          : errors.internal(this.#name, `the reply could not be sent over NATS: ${(err as Error).message}`);
      const fallback = errorReply(error);
      msg.respond(fallback.body, { headers: replyHeaders(this.#headers, id, fallback, this.#name) });
    }
  }
}

/** A stream's caller as the handler side sees it: gone once it cancelled or went silent. */
function callerOf(link: StreamLink): Caller {
  return {
    get gone() {
      return link.gone !== undefined;
    },
    onGone: (listener) => link.onGone(() => listener()),
  };
}

/** Starts a NATS listener. Rejects with a ConfigError for names that cannot be subjects, a 503 without a server. */
export function createNatsListener(handler: RequestHandler, options: NatsListenerOptions): Promise<NatsListener> {
  return new NatsListener(handler, options).start();
}
