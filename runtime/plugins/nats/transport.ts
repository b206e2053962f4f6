/**
 * The NATS transport: `nats://` node addresses, request/reply over a NATS server. Services it listens for are
 * also NATS services (`$SRV.PING|INFO|STATS`), so `nats micro ls` and friends list them. Subjects and node
 * addresses: address.ts; metadata and errors in headers: headers.ts.
 */
import {
  ConfigError,
  type CallOptions,
  type Listener,
  type ListenOptions,
  type NodeRecord,
  type RequestHandler,
  type Transport,
  type TransportRequest,
  type TransportResponse,
} from '../../core/index.js';
import { NatsClient } from './client.js';
import type { NatsConnections } from './connections.js';
import { createNatsListener, type NatsServiceInfo } from './listener.js';
import type { NatsStreamOptions } from './stream.js';

export type { NatsServiceInfo } from './listener.js';
export type { NatsStreamOptions } from './stream.js';

export interface NatsTransportOptions {
  /**
   * The NATS server, `nats://[user:pass@]host:port` (several separated by commas): where listeners connect, and
   * where calls go (without it a call connects to the server named in the node address).
   */
  address?: string;
  /**
   * Connection name shown by NATS monitoring (when this transport opens the connection). Default `micro-fn` for
   * calls, the service name for listeners.
   */
  name?: string;
  /**
   * The pool shared with the other NATS plugins of the set: calls and listeners use one connection per server with
   * them. Default one of its own.
   */
  connections?: NatsConnections;
  /** The service a listener announces when listen() is not told (core's Service tells it); listen()'s wins. */
  service?: NatsServiceInfo;
  /** Milliseconds a listener's `close()` waits for in-flight replies. Default 2000. */
  closeTimeout?: number;
  /** Flow control and liveness of streams, both as caller and as listener (see stream.ts). */
  stream?: NatsStreamOptions;
}

const NATS_URL = /^(nats|tls|ws|wss):\/\//i;

/**
 * Request/reply over NATS. A listener needs no port: it connects to the server and subscribes, so a listen
 * address that is not a NATS URL (`127.0.0.1:0` from MICRO_SERVER_ADDRESS, meant for HTTP) is ignored in
 * favour of the transport's `address`.
 */
export class NatsTransport implements Transport {
  readonly schemes = ['nats'] as const;
  readonly #options: NatsTransportOptions;
  readonly #client: NatsClient;
  readonly #listeners = new Set<Listener>();

  constructor(options: NatsTransportOptions = {}) {
    this.#options = options;
    const { address, name, connections, stream } = options;
    this.#client = new NatsClient({ address, name, connections, stream });
  }

  call(node: NodeRecord, request: TransportRequest, options?: CallOptions): Promise<TransportResponse> {
    return this.#client.call(node, request, options);
  }

  /**
   * Connects to `options.address` when it is a NATS URL (else the transport's `address`), adds a NATS service
   * for `options.service` (else the transport's `service`) and resolves with a listener whose address is
   * `nats://HOST:PORT/<service>/<node id>`.
   */
  async listen(handler: RequestHandler, options: ListenOptions = {}): Promise<Listener> {
    const address = options.address && NATS_URL.test(options.address) ? options.address : this.#options.address;
    if (!address) {
      throw new ConfigError(
        `the NATS transport needs a NATS server to listen through: createNatsTransport({ address: 'nats://127.0.0.1:4222' }); got listen address "${options.address ?? ''}"`,
      );
    }
    const service = options.service ?? this.#options.service;
    if (!service) {
      throw new ConfigError(
        'a NATS listener announces a service: listen(handler, { service: { name, version, endpoints } }) (a Service passes it), or createNatsTransport({ service })',
      );
    }
    const listener = await createNatsListener(handler, {
      address,
      service,
      connectionName: this.#options.name,
      connections: this.#options.connections,
      closeTimeout: this.#options.closeTimeout,
      stream: this.#options.stream,
    });
    this.#listeners.add(listener);
    return listener;
  }

  /** Closes every listener it started (each answers its in-flight requests first), then its call connections. */
  async close(): Promise<void> {
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    await Promise.allSettled(listeners.map((l) => l.close()));
    await this.#client.close();
  }
}

/**
 * Creates the NATS transport.
 * @example
 * import { createService } from 'micro-fn';
 * import { createMemoryRegistry } from 'micro-fn/memory';
 * import { createNatsTransport } from 'micro-fn/nats';
 *
 * const handlers = { Greeter: { Hello: (r: { name: string }) => ({ message: `Hello ${r.name}` }) } };
 * // The service tells listen() its name, version and endpoints: the listener announces them to NATS.
 * const transport = createNatsTransport({ address: 'nats://127.0.0.1:4222' });
 * const service = createService({ name: 'greeter', version: '1.0.0', handlers }, { registry: createMemoryRegistry(), transport });
 * await service.start();
 * // nats micro info greeter; nats req micro.greeter.Greeter.Hello '{"name":"Ada"}'
 */
export function createNatsTransport(options?: NatsTransportOptions): NatsTransport {
  return new NatsTransport(options);
}
