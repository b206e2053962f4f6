/**
 * The NATS client half: one request/reply per call, on the node's own subject
 * (`micro.<service>.<node id>.<Service.Method>`, see address.ts), so a call reaches the node the selector picked.
 */
import type { NatsConnection } from 'nats';
import {
  MicroError,
  errors,
  type CallOptions,
  type NodeRecord,
  type TransportRequest,
  type TransportResponse,
} from '../../core/index.js';
import { nodeSubjectPrefix, parseNodeAddress, subjectSafe, type NatsNode } from './address.js';
import { connectNats } from './connection.js';
import { header, replyError, requestHeaders, responseMetadata, type HeadersFactory } from './headers.js';

export interface NatsClientOptions {
  /**
   * The NATS server to send through: `nats://[user:pass@]host:port`, several separated by commas. Without it
   * the client connects to the server named in each node address (no credentials travel in node addresses).
   */
  address?: string;
  /** Connection name shown by NATS monitoring. Default `micro-fn`. */
  name?: string;
}

/** How long a call without a deadline waits: NATS requests always have a timeout. */
const NO_DEADLINE_TIMEOUT = 60_000;

interface Connection {
  nc: NatsConnection;
  headers: HeadersFactory;
}

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
  readonly #connections = new Map<string, Promise<Connection>>();
  /** The connections of #connections that are open. */
  readonly #open = new Map<string, Connection>();
  /** Parsed node addresses (a node is called many times). */
  readonly #targets = new Map<string, (NatsNode & { prefix: string }) | undefined>();

  constructor(options: NatsClientOptions = {}) {
    this.#options = options;
  }

  /** Sends `request` to the node behind `node.address` and waits for its reply, within `deadline`. */
  async call(node: NodeRecord, request: TransportRequest, options: CallOptions = {}): Promise<TransportResponse> {
    const id = request.service || 'micro-fn';
    const { signal, deadline } = options;
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
    const { nc, headers } = this.#open.get(server) ?? (await bounded(this.#connect(server), deadline, signal, id));
    const timeout = deadline === undefined ? NO_DEADLINE_TIMEOUT : Math.floor(deadline - Date.now());
    if (timeout < 1) throw aborted(id, signal, undefined);
    const sent = nc.request(subject, request.body, { timeout, headers: requestHeaders(headers, request) });
    try {
      // The request's own timeout is the deadline; only the signal needs watching.
      const msg = await bounded(sent, undefined, signal, id);
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
    } finally {
      // An abandoned request ends at its own timeout; its rejection is expected and not reported.
      sent.catch(() => {});
    }
  }

  /** Closes every connection this client opened; calls still waiting fail with a 503 (not retryable: they were sent). */
  async close(): Promise<void> {
    const pending = [...this.#connections.values()];
    this.#connections.clear();
    this.#open.clear();
    await Promise.allSettled(pending.map(async (c) => (await c).nc.close()));
  }

  #target(address: string): (NatsNode & { prefix: string }) | undefined {
    if (this.#targets.has(address)) return this.#targets.get(address);
    const node = parseNodeAddress(address);
    const target = node && { ...node, prefix: nodeSubjectPrefix(node.service, node.id) };
    if (this.#targets.size >= 1024) this.#targets.clear(); // nodes come and go: keep it bounded
    this.#targets.set(address, target);
    return target;
  }

  #connect(server: string): Promise<Connection> {
    let connection = this.#connections.get(server);
    if (!connection) {
      connection = (async () => {
        const nc = await connectNats({ address: server, name: this.#options.name ?? 'micro-fn' });
        const open = { nc, headers: (await import('nats')).headers };
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
