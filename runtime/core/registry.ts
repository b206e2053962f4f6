/** One running instance of a service: where to reach it. */
export interface NodeRecord {
  id: string;
  /** A URL whose scheme picks the transport: `http://…`, `memory://…`, `nats://…`, `lambda://…`. */
  address: string;
  metadata: Record<string, string>;
}

export interface EndpointRecord {
  /** `Service.Method`, e.g. `Greeter.Hello`, or a topic for a subscriber. */
  name: string;
  metadata: Record<string, string>;
}

/** go-micro's service shape, with lower-case JSON keys. */
export interface ServiceRecord {
  name: string;
  version: string;
  metadata: Record<string, string>;
  endpoints: EndpointRecord[];
  nodes: NodeRecord[];
}

export interface RegisterOptions {
  /** Seconds until the nodes expire unless registered again. 0 or absent: kept until deregistered. */
  ttl?: number;
}

export type RegistryEventType = 'create' | 'update' | 'delete';

export interface RegistryEvent {
  type: RegistryEventType;
  /** The service version the event is about, with only the nodes that changed. */
  service: ServiceRecord;
}

export interface WatchOptions {
  /** Only events of this service name. */
  service?: string;
  /** Ends the watch. */
  signal?: AbortSignal;
}

/**
 * Where services find each other. A service registers its node on start, refreshes it within the TTL and
 * deregisters on stop; entries that are not refreshed expire.
 */
export interface Registry {
  /** Adds or refreshes the nodes of `service` (merged with nodes other instances registered). */
  register(service: ServiceRecord, options?: RegisterOptions): Promise<void>;
  /** Removes the nodes of `service`; the version disappears with its last node. */
  deregister(service: ServiceRecord): Promise<void>;
  /** Every live version of a service; an empty array when it is unknown. */
  getService(name: string): Promise<ServiceRecord[]>;
  /** Every live service version. */
  listServices(): Promise<ServiceRecord[]>;
  /** Changes from now on, until the signal aborts or the iteration is left. */
  watch(options?: WatchOptions): AsyncIterable<RegistryEvent>;
  /** Releases timers and connections. */
  close?(): Promise<void>;
}
