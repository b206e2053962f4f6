/** The memory transport: `memory://` addresses that reach listeners of the same MemoryTransport instance. */
import {
  HEALTH_ENDPOINT,
  Metadata,
  MicroError,
  errorReply,
  errors,
  fromWire,
  toMicroError,
  type CallOptions,
  type Listener,
  type ListenOptions,
  type NodeRecord,
  type Reply,
  type RequestHandler,
  type ServerResponse,
  type Transport,
  type TransportRequest,
  type TransportResponse,
} from '../../core/index.js';

/**
 * An in-process transport. Like a network it copies every byte and every metadata map across (caller and
 * server never share a buffer), refuses an address nobody listens on with a 503 marked `unreachable`, and gives up with a
 * 408 when the caller's signal aborts or its deadline passes. Two instances never reach each other.
 */
export class MemoryTransport implements Transport {
  readonly schemes = ['memory'] as const;
  readonly #listeners = new Map<string, MemoryListener>();

  /** Starts a listener at `memory://<random id>`; the address option has no meaning here and is ignored. */
  async listen(handler: RequestHandler, _options?: ListenOptions): Promise<Listener> {
    const address = `memory://${crypto.randomUUID()}`;
    const listener = new MemoryListener(address, handler, () => this.#listeners.delete(address));
    this.#listeners.set(address, listener);
    return listener;
  }

  call(node: NodeRecord, request: TransportRequest, options: CallOptions = {}): Promise<TransportResponse> {
    const listener = this.#listeners.get(node.address);
    if (!listener)
      return Promise.reject(
        errors.unavailable(request.service || 'micro-fn', `nothing listens at ${node.address}`, { unreachable: true }),
      );
    return listener.exchange(request, options);
  }

  /** Closes every listener (each answers its in-flight requests first). */
  async close(): Promise<void> {
    await Promise.all([...this.#listeners.values()].map((l) => l.close()));
  }
}

/**
 * Creates a memory transport.
 * @example
 * const transport = createMemoryTransport();
 * const listener = await transport.listen(async (request, reply) => {
 *   await reply({ status: 200, contentType: request.contentType, body: request.body, metadata: new Metadata() });
 * });
 * const node = { id: 'echo-1', address: listener.address, metadata: {} };
 * const response = await transport.call(node, { id: '1', service: 'echo', endpoint: 'Echo.Say', contentType: 'application/json', body: new TextEncoder().encode('{}'), metadata: new Metadata() });
 */
export function createMemoryTransport(): MemoryTransport {
  return new MemoryTransport();
}

class MemoryListener implements Listener {
  readonly address: string;
  readonly #handler: RequestHandler;
  readonly #detach: () => void;
  /** Requests received and not yet answered (or given up by their caller). */
  #pending = 0;
  #drained: (() => void) | undefined;
  #closed: Promise<void> | undefined;

  constructor(address: string, handler: RequestHandler, detach: () => void) {
    this.address = address;
    this.#handler = handler;
    this.#detach = detach;
  }

  exchange(request: TransportRequest, options: CallOptions): Promise<TransportResponse> {
    const id = request.service || 'micro-fn';
    const { signal, deadline } = options;
    if (signal?.aborted) return Promise.reject(errors.timeout(id, 'request aborted', { retryable: false }));
    if (deadline !== undefined && deadline <= Date.now())
      return Promise.reject(errors.timeout(id, 'deadline exceeded', { retryable: false }));

    return new Promise<TransportResponse>((resolve, reject) => {
      let open = true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const end = (): boolean => {
        if (!open) return false;
        open = false;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#settled();
        return true;
      };
      const onAbort = () => {
        if (end()) reject(errors.timeout(id, 'request aborted', { retryable: false }));
      };
      const answer = (response: ServerResponse): boolean => {
        if (!end()) return false;
        resolve(copyResponse(response));
        return true;
      };
      const reply: Reply = async (response) => {
        if (!answer(response)) throw new Error('the caller is gone, or reply was already called');
      };

      signal?.addEventListener('abort', onAbort, { once: true });
      if (deadline !== undefined) {
        timer = setTimeout(() => {
          if (end()) reject(errors.timeout(id, 'deadline exceeded', { retryable: false }));
        }, deadline - Date.now());
      }
      this.#pending++;
      const copy = {
        id: request.id,
        service: request.service,
        endpoint: request.endpoint,
        contentType: request.contentType,
        body: new Uint8Array(request.body),
        metadata: new Metadata(request.metadata),
        probe: request.endpoint === HEALTH_ENDPOINT,
      };
      let result: Promise<void>;
      try {
        result = Promise.resolve(this.#handler(copy, reply));
      } catch (err) {
        result = Promise.reject(err);
      }
      // A handler that fails or returns without replying still answers its caller, as a 500.
      result.then(
        () => {
          if (open) answer(errorResponse(request.id, errors.internal(id, 'the handler finished without a reply')));
        },
        (err: unknown) => {
          if (open) answer(errorResponse(request.id, toMicroError(err, id)));
        },
      );
    });
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#detach();
      if (this.#pending === 0) resolve();
      else this.#drained = resolve;
    });
    return this.#closed;
  }

  #settled(): void {
    this.#pending--;
    if (this.#pending === 0) this.#drained?.();
  }
}

/** What the caller receives: its own bytes and metadata, and the error rebuilt as if it came off a wire. */
function copyResponse(response: ServerResponse): TransportResponse {
  const copy: TransportResponse = {
    contentType: response.contentType,
    body: new Uint8Array(response.body),
    metadata: new Metadata(response.metadata),
  };
  const e = response.error;
  if (e) copy.error = fromWire(e.id, e.code, e.detail);
  return copy;
}

function errorResponse(id: string, error: MicroError): ServerResponse {
  return errorReply(error, new Metadata({ 'micro-id': id }));
}
