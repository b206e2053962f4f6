/**
 * The NATS client half: one request/reply per call, on the node's own subject
 * (`micro.<service>.<node id>.<Service.Method>`, see address.ts), so a call reaches the node the selector picked.
 */
import type { Msg, NatsConnection } from 'nats';
import {
  MicroError,
  errors,
  type CallOptions,
  type NodeRecord,
  type TransportRequest,
  type TransportResponse,
} from '../../core/index.js';
import { nodeSubjectPrefix, parseNodeAddress, subjectSafe, type NatsNode } from './address.js';
import { lazyConnection, type LazyConnection, type NatsConnections } from './connections.js';
import { header, replyError, requestHeaders, responseMetadata, type HeadersFactory } from './headers.js';
import { STREAM_HEADER, StreamOp, streamOp, type NatsStreamOptions } from './stream.js';
import { StreamLink } from './stream-link.js';
import { Replies } from './replies.js';
import type { StreamReceiver } from './stream-receiver.js';

export interface NatsClientOptions {
  /**
   * The NATS server to send through: `nats://[user:pass@]host:port`, several separated by commas. Without it
   * the client connects to the server named in each node address (no credentials travel in node addresses).
   */
  address?: string;
  /** Connection name shown by NATS monitoring when the client is the one that opens it. Default `micro-fn`. */
  name?: string;
  /** The pool shared with the other NATS plugins of the set (one connection per server); default one of its own. */
  connections?: NatsConnections;
  /** Flow control and liveness of streams (stream.ts). */
  stream?: NatsStreamOptions;
}

/** How long a call without a deadline waits: NATS requests always have a timeout. */
const NO_DEADLINE_TIMEOUT = 60_000;

interface Connection {
  nc: NatsConnection;
  headers: HeadersFactory;
  /** A fresh inbox subject (the `nats` package's createInbox). */
  inbox: () => string;
}

/** An open connection, with the request/reply of its plain calls. */
interface OpenConnection extends Connection {
  replies: Replies;
}

const EMPTY = new Uint8Array(0);

/**
 * Sends TransportRequests as NATS requests, metadata in headers.
 *
 * - A reply with `micro-error` or `Nats-Service-Error-Code` resolves with `error` set (body's error JSON, else
 *   the header's, else the NATS Services headers; anything else becomes a generic remote error).
 * - No responders (the node is gone: nobody received the request) rejects with a retryable 503 marked
 *   `unreachable`; so does a node address that is not one. A server that cannot be reached rejects with a retryable
 *   503 (nothing was sent).
 * - A connection that closes, or any other failure, once the request was handed to NATS rejects with a 503 that is
 *   NOT retryable: the handler may have run.
 * - A passed deadline or an aborted signal rejects with a 408 that is not retryable.
 */
export class NatsClient {
  readonly #options: NatsClientOptions;
  /** One connection per server, opened on first use. */
  readonly #connections = new Map<string, Promise<OpenConnection>>();
  /** The connections of #connections that are open. */
  readonly #open = new Map<string, OpenConnection>();
  /** The shares taken by #connect, given back by close(). */
  readonly #shares = new Set<LazyConnection>();
  /** Parsed node addresses (a node is called many times). */
  readonly #targets = new Map<string, (NatsNode & { prefix: string }) | undefined>();

  constructor(options: NatsClientOptions = {}) {
    this.#options = options;
  }

  /** Sends `request` to the node behind `node.address` and waits for its reply, within `deadline`. */
  async call(node: NodeRecord, request: TransportRequest, options: CallOptions = {}): Promise<TransportResponse> {
    const id = request.service || 'micro-fn';
    const { signal } = options;
    // No deadline, or an endless one (`timeout: Infinity`): timers cannot take Infinity (Node makes it 1 ms).
    const deadline = Number.isFinite(options.deadline) ? options.deadline : undefined;
    if (signal?.aborted) throw aborted(id, signal, undefined);
    const target = this.#target(node.address);
    if (!target)
      throw errors.unavailable(
        id,
        `${node.address} is not a NATS node address (nats://host:port/<service>/<node id>)`,
        {
          unreachable: true,
        },
      );
    if (!subjectSafe(request.endpoint))
      throw errors.badRequest(id, `the endpoint "${request.endpoint}" cannot be part of a NATS subject`, {
        retryable: false,
      });
    const subject = `${target.prefix}.${request.endpoint}`;

    const server = this.#options.address ?? target.server;
    // An open connection is used as it is: no timer and promise per call to bound a wait that cannot happen.
    const { nc, headers, inbox, replies } =
      this.#open.get(server) ?? (await bounded(this.#connect(server), deadline, signal, id));
    const timeout = deadline === undefined ? NO_DEADLINE_TIMEOUT : Math.floor(deadline - Date.now());
    if (timeout < 1) throw aborted(id, signal, undefined);
    if (request.stream)
      return this.#callStream({ nc, headers, inbox }, subject, request, { signal, deadline }, timeout);
    try {
      // The request's own timeout is the deadline; its signal ends it too.
      const msg = await replies.request(subject, request.body, requestHeaders(headers, request), timeout, signal);
      if (streamOp(msg.headers) === StreamOp.open) return this.#streamReply({ nc, headers, inbox }, msg, id, signal);
      const response: TransportResponse = {
        contentType: header(msg.headers, 'content-type') ?? 'application/json',
        body: msg.data,
        metadata: responseMetadata(msg.headers),
      };
      const error = replyError(msg.headers, msg.data, id);
      if (error) response.error = error;
      return response;
    } catch (err) {
      throw err instanceof MicroError ? err : failure(err, id, subject, nc, signal);
    }
  }

  /**
   * A call whose request streams (client and bidi streams): the request goes out with this call's own inbox as its
   * reply subject, and `micro-stream: open`; the request stream is sent as the handler's reader grants credit (none
   * is pulled before it asks, so a refusal that ran nothing leaves it untouched and the call may go elsewhere).
   * Resolves with the reply: a plain one (the client stream's answer), or a streamed one (bidi).
   */
  #callStream(
    conn: Connection,
    subject: string,
    request: TransportRequest,
    options: CallOptions,
    timeout: number,
  ): Promise<TransportResponse> {
    const id = request.service || 'micro-fn';
    const { signal, deadline } = options;
    const link = new StreamLink({
      nc: conn.nc,
      headers: conn.headers,
      local: conn.inbox(),
      side: 'caller',
      id,
      stream: this.#options.stream,
    });
    link.hold(); // until the reply
    void link.sendStream(request.stream!);
    return new Promise<TransportResponse>((resolve, reject) => {
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (error: MicroError | undefined, response?: TransportResponse): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        if (error) {
          link.stopReading();
          link.sender?.cancel();
        } else if (link.receiver) this.#watch(link.receiver, signal);
        link.release();
        if (error) reject(error);
        else resolve(response!);
      };
      const abort = (): void => settle(aborted(id, signal, undefined));
      // Until the handler's side is heard from, the call's own timeout; after that a deadline still bounds the
      // wait for the reply, and without one the stream's heartbeats tell a handler that is gone.
      const expire = (): void => {
        if (deadline === undefined && link.heard) return;
        settle(aborted(id, signal, undefined));
      };
      timer = setTimeout(expire, timeout);
      signal?.addEventListener('abort', abort, { once: true });
      link.onGone((error) =>
        settle(
          error.unreachable
            ? errors.unavailable(id, `no responders on ${subject}: the node is gone`, { unreachable: true })
            : error,
        ),
      );
      link.onReply = (msg) => {
        const response: TransportResponse = {
          contentType: header(msg.headers, 'content-type') ?? 'application/json',
          body: msg.data,
          metadata: responseMetadata(msg.headers),
        };
        if (streamOp(msg.headers) === StreamOp.open) {
          response.metadata.delete(STREAM_HEADER);
          response.stream = link.receive(false);
        } else {
          const error = replyError(msg.headers, msg.data, id);
          if (error) response.error = error;
          // A plain reply is the handler's last word: it reads no more of the request stream.
          link.sender?.cancel();
        }
        settle(undefined, response);
      };
      try {
        const h = requestHeaders(conn.headers, request);
        h.set(STREAM_HEADER, StreamOp.open);
        conn.nc.publish(subject, EMPTY, { reply: link.local, headers: h });
      } catch (err) {
        settle(err instanceof MicroError ? err : failure(err, id, subject, conn.nc, signal));
      }
    });
  }

  /** A plain call answered with a streamed reply (a server stream): reads it on a fresh inbox. */
  #streamReply(conn: Connection, head: Msg, id: string, signal: AbortSignal | undefined): TransportResponse {
    const link = new StreamLink({
      nc: conn.nc,
      headers: conn.headers,
      local: conn.inbox(),
      remote: head.reply,
      side: 'caller',
      id,
      stream: this.#options.stream,
    });
    const stream = link.receive(false);
    this.#watch(stream, signal);
    const metadata = responseMetadata(head.headers);
    metadata.delete(STREAM_HEADER);
    return { contentType: header(head.headers, 'content-type') ?? 'application/json', body: EMPTY, metadata, stream };
  }

  /** The call's signal cancels its reply stream until the stream ends. */
  #watch(stream: StreamReceiver, signal: AbortSignal | undefined): void {
    if (!signal) return;
    const abort = (): void => stream.cancel();
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    stream.end.then(() => signal.removeEventListener('abort', abort));
  }

  /**
   * Gives back every connection share this client took (the last share closes the connection: calls still waiting
   * then fail with a 503, not retryable: they were sent; on a connection other plugins still use, they wait for
   * their reply or deadline).
   */
  async close(): Promise<void> {
    const shares = [...this.#shares];
    this.#shares.clear();
    this.#connections.clear();
    // Its calls still waiting end now (503), also on a connection other plugins keep open.
    for (const open of this.#open.values()) open.replies.close('the NATS transport closed before the reply arrived');
    this.#open.clear();
    await Promise.allSettled(shares.map((share) => share.close()));
  }

  #target(address: string): (NatsNode & { prefix: string }) | undefined {
    if (this.#targets.has(address)) return this.#targets.get(address);
    const node = parseNodeAddress(address);
    const target = node && { ...node, prefix: nodeSubjectPrefix(node.service, node.id) };
    if (this.#targets.size >= 1024) this.#targets.clear(); // nodes come and go: keep it bounded
    this.#targets.set(address, target);
    return target;
  }

  #connect(server: string): Promise<OpenConnection> {
    let connection = this.#connections.get(server);
    if (!connection) {
      connection = (async () => {
        const { name = 'micro-fn', connections } = this.#options;
        const share = lazyConnection({ address: server, connections }, 'micro-fn', name);
        this.#shares.add(share);
        let nc: NatsConnection;
        try {
          nc = await share.get();
        } catch (err) {
          this.#shares.delete(share); // it holds nothing
          throw err;
        }
        const { headers, createInbox } = await import('nats');
        const open = { nc, headers, inbox: () => createInbox(), replies: new Replies(nc, createInbox()) };
        nc.closed().then(() => {
          if (this.#connections.get(server) === connection) this.#connections.delete(server);
          if (this.#open.get(server) === open) this.#open.delete(server);
        });
        if (!nc.isClosed()) this.#open.set(server, open);
        return open;
      })();
      // A failed connect is not kept: the next call tries again.
      connection.catch(() => this.#connections.get(server) === connection && this.#connections.delete(server));
      this.#connections.set(server, connection);
    }
    return connection;
  }
}

/** `promise`, or a 408 once `deadline` passes or `signal` aborts, whichever comes first. */
async function bounded<T>(
  promise: Promise<T>,
  deadline: number | undefined,
  signal: AbortSignal | undefined,
  id: string,
): Promise<T> {
  if (deadline === undefined && !signal) return promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stop: (() => void) | undefined;
  try {
    return await new Promise<T>((resolve, reject) => {
      stop = () => reject(aborted(id, signal, undefined));
      if (deadline !== undefined) timer = setTimeout(stop, Math.max(0, deadline - Date.now()));
      signal?.addEventListener('abort', stop, { once: true });
      promise.then(resolve, reject);
    });
  } finally {
    clearTimeout(timer);
    if (stop) signal?.removeEventListener('abort', stop);
  }
}

function aborted(id: string, signal: AbortSignal | undefined, cause: unknown): MicroError {
  const detail = signal?.aborted ? 'request aborted' : 'deadline exceeded';
  return errors.timeout(id, detail, { retryable: false, cause });
}

/** A failure of the `nats` package as a core error; the original is kept as `cause`. */
function failure(
  err: unknown,
  id: string,
  subject: string,
  nc: NatsConnection,
  signal: AbortSignal | undefined,
): MicroError {
  const code = (err as { code?: unknown }).code;
  // A closing connection cancels its requests with a timeout error: that is a failed connection, not a deadline.
  if (nc.isClosed())
    return errors.unavailable(id, 'the NATS connection closed before the reply arrived; not sent again', {
      retryable: false,
      cause: err,
    });
  switch (code) {
    case '503':
      // The server says no subscription matched the subject: nobody received the request.
      return errors.unavailable(id, `no responders on ${subject}: the node is gone`, { unreachable: true, cause: err });
    case 'TIMEOUT':
      return aborted(id, signal, err);
    case 'MAX_PAYLOAD_EXCEEDED':
      return errors.payloadTooLarge(
        id,
        `the request is larger than the NATS server's max_payload (${nc.info?.max_payload ?? '?'} bytes)`,
        { cause: err },
      );
    case 'BAD_HEADER':
      return errors.badRequest(id, `the request metadata cannot travel as NATS headers: ${(err as Error).message}`, {
        retryable: false,
        cause: err,
      });
    default:
      return errors.unavailable(id, `NATS request on ${subject} failed: ${(err as Error).message}; not sent again`, {
        retryable: false,
        cause: err,
      });
  }
}
