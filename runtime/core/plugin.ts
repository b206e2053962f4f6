/**
 * How a plugin declares itself: one descriptor per registry, broker or transport it provides, in its folder's
 * `plugin.ts`. The resolver (runtime/plugins/resolve.ts) and every bundler read these descriptors; nothing else
 * names a plugin. A descriptor is a plain object (no call at module level), so a bundler can tree-shake the ones a
 * bundle does not select.
 */
import type { Broker } from './broker.js';
import type { Env, RuntimeConfig } from './config.js';
import type { Registry } from './registry.js';
import type { StoreBackend } from './store.js';
import type { SyncBackend } from './sync.js';
import type { ConfigBackend } from './function-config.js';
import type { Transport } from './transport.js';
import type { SpanExporter, Tracer } from './trace.js';

export type PluginKind = 'registry' | 'broker' | 'transport' | 'exporter' | 'store' | 'sync' | 'config';

/**
 * What a host offers: `node` (a Node process: micro-fn serve's functions, `run`, `invoke`, Lambda) or `web`
 * (Web-standard APIs only: Cloudflare Workers, Deno). A plugin lists the platforms it runs on.
 */
export type Platform = 'node' | 'web';

/** What a broker's host decides rather than the function (`micro-fn serve` passes its own). */
export interface BrokerSettings {
  /** Milliseconds a delivery may go unsettled before it is redelivered (JetStream; default 30 000). */
  ackWait?: number;
  /** Messages pulled and handled at once per subscription (JetStream; default 1). */
  concurrency?: number;
}

/** What a descriptor's `create` gets. */
export interface PluginContext {
  env: Env;
  config: RuntimeConfig;
  platform: Platform;
  /** The registry chosen for this host (a broker may find its server through it). */
  registry?: Registry;
  /** A transport for `http://` and `https://` addresses (a broker may reach its server with it). */
  http?: Transport;
  broker: BrokerSettings;
  /**
   * What the plugins of this set share, each family under a key of its own (the NATS plugins: one connection per
   * server). It lives as long as the set and is never handed to another set: a Worker must not use one request's
   * I/O in another, and two functions in one process keep their own. Absent: each plugin keeps its own.
   */
  resources?: Map<unknown, unknown>;
}

interface Descriptor<K extends PluginKind, T> {
  kind: K;
  /** What `MICRO_REGISTRY` / `MICRO_BROKER` / `MICRO_TRANSPORT` / `MICRO_STORE` / `MICRO_SYNC` / `MICRO_CONFIG` name it. */
  name: string;
  /** One line for `--help` and errors. */
  summary: string;
  platforms: readonly Platform[];
  /** The platforms on which it is used when the environment names none of its kind (the embedded default). */
  defaultOn?: readonly Platform[];
  /**
   * Third-party packages its code imports, each with what a platform uses instead (`{ nats: { web: 'nats.ws' } }`):
   * a bundler bundles them, or leaves them to the host, and substitutes them per platform.
   */
  packages?: Readonly<Record<string, Partial<Record<Platform, string>>>>;
  /**
   * Checks the configuration before anything connects; throws a ConfigError that says how to fix it (an address a
   * platform cannot reach, say).
   */
  check?(context: PluginContext): void;
  /** Makes the plugin; its implementation is imported here, when it is chosen. */
  create(context: PluginContext): Promise<T>;
}

export type RegistryPlugin = Descriptor<'registry', Registry>;
export interface BrokerPlugin extends Descriptor<'broker', Broker> {
  /**
   * True for a broker other hosts share (a NATS server): `micro-fn serve` then uses it, so several serve processes act
   * as one. Otherwise (a process's own, or serve's own reached from elsewhere) serve hosts a broker itself.
   */
  shared?: boolean;
}

export interface TransportPlugin extends Descriptor<'transport', Transport> {
  /** The address schemes it calls (`http`, `https`): a node address's scheme picks the transport. */
  schemes: readonly string[];
  /**
   * Whether a host with this configuration carries it as a client transport. Absent: always. The transport a
   * standalone function listens with (`MICRO_TRANSPORT`) is carried whatever this says.
   */
  enabled?(config: RuntimeConfig): boolean;
}

/**
 * Sends the spans of the functions of a host somewhere. Chosen by the environment alone (`enabled`), never by
 * default: without one, nothing is recorded. `create` gets the function's name, the default `service.name`.
 */
export interface ExporterPlugin extends Omit<Descriptor<'exporter', SpanExporter>, 'create'> {
  /** Whether the environment asks for it (OpenTelemetry's own variables, say). */
  enabled(env: Env): boolean;
  create(context: PluginContext, service: string): Promise<SpanExporter>;
  /**
   * A tracer that records spans and sends them through `exporter` (trace-recorder.ts's RecordingTracer): made here so
   * that the recorder comes into a bundle with an exporter only, never into one built without.
   */
  tracer(exporter: () => Promise<SpanExporter>): Tracer;
}

/**
 * A key-value store (`ctx.store`, `MICRO_STORE`). `create` runs on a handler's first store operation, never at start,
 * so a function that never touches its store opens none.
 */
export type StorePlugin = Descriptor<'store', StoreBackend>;

/**
 * Locks and elections (`ctx.sync`, `MICRO_SYNC`): a store with atomic compare-and-set and TTLs that runtime/core/sync.ts
 * builds them on. `create` runs on a handler's first lock, never at start.
 */
export type SyncPlugin = Descriptor<'sync', SyncBackend>;

/**
 * The `kv` layer of `ctx.config` (`MICRO_CONFIG`): where `micro-fn config set` writes a function's keys. `create` runs
 * on a handler's first config read, never at start.
 */
export type ConfigPlugin = Descriptor<'config', ConfigBackend>;

export type PluginDescriptor =
  RegistryPlugin | BrokerPlugin | TransportPlugin | ExporterPlugin | StorePlugin | SyncPlugin | ConfigPlugin;

/** A folder's `plugin.ts`, as the catalog imports it: every export a descriptor. */
export type PluginModule = Readonly<Record<string, PluginDescriptor>>;
