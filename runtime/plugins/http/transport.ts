/**
 * The HTTP transport: `http://` and `https://` node addresses. Calls go out with fetch (client.ts); listening
 * loads node:http (listener.ts) only when `listen` is first used, so a Worker or a Lambda that only calls out
 * never loads it.
 */
import type {
  CallOptions,
  Listener,
  ListenOptions,
  NodeRecord,
  RequestHandler,
  Transport,
  TransportRequest,
  TransportResponse,
} from '../../core/index.js';
import type {} from '../../core/build-constants.js';
import { HttpClient, type HttpClientOptions } from './client.js';
import type { HttpListenerOptions } from './listener.js';

export interface HttpTransportOptions extends HttpClientOptions, HttpListenerOptions {}

/**
 * go-micro's "mucp over HTTP": `POST /` with `Micro-Service`, `Micro-Endpoint`, `Micro-Id`, `Content-Type`
 * and metadata as headers; errors as `{"id","code","detail","status"}` in the body and in `Micro-Error`.
 */
export class HttpTransport implements Transport {
  readonly schemes = ['http', 'https'] as const;
  readonly #client: HttpClient;
  readonly #options: HttpTransportOptions;
  readonly #listeners = new Set<Listener>();

  constructor(options: HttpTransportOptions = {}) {
    this.#options = options;
    this.#client = new HttpClient(options);
  }

  call(node: NodeRecord, request: TransportRequest, options?: CallOptions): Promise<TransportResponse> {
    return this.#client.call(node, request, options);
  }

  /** Starts a listener on `options.address` (else the transport's `address`, else `127.0.0.1:0`). */
  async listen(handler: RequestHandler, options: ListenOptions = {}): Promise<Listener> {
    const { createHttpListener } = globalThis.__MICRO_FN_NO_LISTENER__ ? unavailable() : await import('./listener.js');
    const listener = await createHttpListener(handler, {
      ...this.#options,
      address: options.address ?? this.#options.address,
    });
    this.#listeners.add(listener);
    return listener;
  }

  /** Closes every listener this transport started (each waits for its in-flight replies). */
  async close(): Promise<void> {
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    await Promise.allSettled(listeners.map((l) => l.close()));
  }
}

/** `listen` in a bundle built for a host where functions never listen (build-constants.ts). */
function unavailable(): never {
  throw new Error('this bundle was built for a host that invokes functions (Lambda): it carries no HTTP listener');
}

/**
 * Creates the HTTP transport.
 * @example
 * import { createService } from 'micro-fn';
 * import { createMemoryRegistry } from 'micro-fn/memory';
 * import { createHttpTransport } from 'micro-fn/http';
 *
 * const transport = createHttpTransport({ maxBodySize: 4 * 1024 * 1024 });
 * const service = createService(
 *   { name: 'greeter', handlers: { Greeter: { Hello: (r: { name: string }) => ({ message: `Hello ${r.name}` }) } } },
 *   { registry: createMemoryRegistry(), transport, address: '127.0.0.1:0' },
 * );
 * await service.start();
 * // curl -d '{"name":"Ada"}' http://127.0.0.1:<port>/greeter/Greeter.Hello
 */
export function createHttpTransport(options?: HttpTransportOptions): HttpTransport {
  return new HttpTransport(options);
}
