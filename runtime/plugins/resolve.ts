/**
 * Plugins by name, as `MICRO_REGISTRY` / `MICRO_BROKER` / `MICRO_TRANSPORT` and the CLI flags give them, read
 * from the descriptors in the catalog. Each plugin's code is imported only when it is chosen, so a process that
 * uses the local plugins never loads the NATS client.
 */
import type { Broker } from '../core/broker.js';
import { ConfigError, readConfig, type Env, type RuntimeConfig } from '../core/config.js';
import type { SpanExporter, TracerFactory } from '../core/trace.js';
import type {
  BrokerPlugin,
  BrokerSettings,
  ConfigPlugin,
  ExporterPlugin,
  Platform,
  PluginContext,
  PluginDescriptor,
  PluginKind,
  RegistryPlugin,
  StorePlugin,
  SyncPlugin,
  TransportPlugin,
} from '../core/plugin.js';
import type { StoreBackend } from '../core/store.js';
import type { SyncBackend } from '../core/sync.js';
import type { ConfigBackend } from '../core/function-config.js';
import type { Registry } from '../core/registry.js';
import type { Transport } from '../core/transport.js';
import { bundled, pluginModules } from './catalog.js';

export interface Plugins {
  /** Absent only on a Web platform with no MICRO_REGISTRY: calls then need an address. */
  registry?: Registry;
  /** Absent only on a Web platform with no MICRO_BROKER. */
  broker?: Broker;
  /** Every client transport this host carries, by scheme. */
  transports: Transport[];
  /** The store plugin (`MICRO_STORE`), opened on the first call; absent on a Web platform with no MICRO_STORE. */
  store?: () => Promise<StoreBackend>;
  /** The sync plugin (`MICRO_SYNC`), opened on the first lock; absent on a Web platform with no MICRO_SYNC. */
  sync?: () => Promise<SyncBackend>;
  /** The `kv` layer of `ctx.config` (`MICRO_CONFIG`), opened on the first read; absent on a Web platform with none. */
  config?: () => Promise<ConfigBackend>;
  /** Closes what was opened here. */
  close(): Promise<void>;
}

/** Plugins on Node: there the embedded default always supplies a registry and a broker. */
export interface NodePlugins extends Plugins {
  registry: Registry;
  broker: Broker;
}

export interface ResolveOptions {
  /** Where this runs (default node). */
  platform?: Platform;
  /** The broker settings a host decides (`micro-fn serve` passes its own). */
  broker?: BrokerSettings;
}

type ByKind = {
  registry: RegistryPlugin;
  broker: BrokerPlugin;
  transport: TransportPlugin;
  exporter: ExporterPlugin;
  store: StorePlugin;
  sync: SyncPlugin;
  config: ConfigPlugin;
};

const VARIABLE: Record<PluginKind, string> = {
  registry: 'MICRO_REGISTRY',
  broker: 'MICRO_BROKER',
  transport: 'MICRO_TRANSPORT',
  exporter: 'OTEL_TRACES_EXPORTER',
  store: 'MICRO_STORE',
  sync: 'MICRO_SYNC',
  config: 'MICRO_CONFIG',
};

/** Every descriptor in the catalog (or in a bundle's copy of it). */
export function descriptors(): PluginDescriptor[] {
  return Object.values(pluginModules).flatMap((m) => Object.values(m));
}

/** The descriptors of `kind` that run on `platform`. */
export function available<K extends PluginKind>(kind: K, platform: Platform): ByKind[K][] {
  return descriptors().filter((d): d is ByKind[K] => d.kind === kind && d.platforms.includes(platform));
}

/** Names for help text: `local (default), memory, nats`. */
export function pluginNames(kind: PluginKind, platform: Platform = 'node'): string {
  const seen = new Map<string, boolean>();
  for (const d of available(kind, platform))
    seen.set(d.name, seen.get(d.name) || (d.defaultOn?.includes(platform) ?? false));
  return [...seen].map(([name, isDefault]) => (isDefault ? `${name} (default)` : name)).join(', ');
}

/**
 * The descriptor `name` picks for `kind` on `platform`; with no name, the platform's default (undefined when
 * it has none). An unknown name, or one that does not run here, is a ConfigError listing what does.
 */
export function choose<K extends PluginKind>(
  kind: K,
  name: string | undefined,
  platform: Platform,
): ByKind[K] | undefined {
  const here = available(kind, platform);
  if (name === undefined) return here.find((d) => d.defaultOn?.includes(platform));
  const found = here.find((d) => d.name === name);
  if (found) return found;
  const elsewhere = descriptors().find((d) => d.kind === kind && d.name === name);
  const names = [...new Set(here.map((d) => d.name))].join(', ') || 'none';
  if (elsewhere)
    throw new ConfigError(
      `${VARIABLE[kind]}=${name} does not run on ${platform} (it runs on ${elsewhere.platforms.join(', ')}); here: ${names}`,
    );
  if (bundled !== undefined) {
    throw new ConfigError(
      `${VARIABLE[kind]}=${name}: this bundle carries only the plugins its configuration chose when it was built (${bundled || 'none'}); build or deploy it with ${VARIABLE[kind]}=${name} in its environment`,
    );
  }
  throw new ConfigError(`${VARIABLE[kind]} must be one of ${names}; got "${name}"`);
}

/**
 * What a host with `env` carries on `platform`: its registry, its broker, the client transports its
 * configuration enables, and the transport it listens with. Bundlers carry exactly these.
 */
export function selectPlugins(env: Env, platform: Platform): PluginDescriptor[] {
  const config = readConfig(env);
  const chosen: PluginDescriptor[] = [];
  const registry = choose('registry', config.registry, platform);
  const broker = choose('broker', config.broker, platform);
  // A bundle built without the store (its function never touches ctx.store) carries no store plugin to choose.
  const store = globalThis.__MICRO_FN_NO_STORE__ ? undefined : choose('store', config.store, platform);
  if (registry) chosen.push(registry);
  if (broker) chosen.push(broker);
  if (store) chosen.push(store);
  const sync = choose('sync', config.sync, platform);
  if (sync) chosen.push(sync);
  // A bundle built without config (its function never touches ctx.config) carries no config plugin to choose.
  const config_ = globalThis.__MICRO_FN_NO_CONFIG__ ? undefined : choose('config', config.config, platform);
  if (config_) chosen.push(config_);
  const listen = config.transport === undefined ? undefined : choose('transport', config.transport, platform);
  for (const t of available('transport', platform)) if (t === listen || (t.enabled?.(config) ?? true)) chosen.push(t);
  chosen.push(...available('exporter', platform).filter((e) => e.enabled(env)));
  const context = contextOf(env, config, platform, {});
  for (const d of chosen) d.check?.(context);
  return chosen;
}

function contextOf(env: Env, config: RuntimeConfig, platform: Platform, broker: BrokerSettings): PluginContext {
  return { env, config, platform, broker, resources: new Map() };
}

/** Registry, broker and transports, as the environment configures them on Node (the embedded default otherwise). */
export async function resolvePlugins(env: Env, options?: ResolveOptions & { platform?: 'node' }): Promise<NodePlugins>;
/** Registry, broker and transports, as the environment configures them on `options.platform`. */
export async function resolvePlugins(env: Env, options: ResolveOptions): Promise<Plugins>;
export async function resolvePlugins(env: Env, options: ResolveOptions = {}): Promise<Plugins> {
  const platform = options.platform ?? 'node';
  const config = readConfig(env);
  const chosen = selectPlugins(env, platform);
  const context = contextOf(env, config, platform, options.broker ?? {});
  const opened: { close?(): Promise<void> }[] = [];
  try {
    const transports = await Promise.all(
      chosen.filter((d): d is TransportPlugin => d.kind === 'transport').map((d) => d.create(context)),
    );
    opened.push(...transports);
    context.http = transports.find((t) => t.schemes.includes('http'));
    const registryPlugin = chosen.find((d): d is RegistryPlugin => d.kind === 'registry');
    const registry = await registryPlugin?.create(context);
    if (registry) opened.push(registry);
    context.registry = registry;
    const broker = await chosen.find((d): d is BrokerPlugin => d.kind === 'broker')?.create(context);
    if (broker) opened.push(broker);
    // Opened on a handler's first store operation, lock or config read only; a failed open is tried again by the next.
    const made: (() => Promise<{ close?(): Promise<void> }> | undefined)[] = [];
    const lazily = <K extends 'store' | 'sync' | 'config'>(kind: K): Partial<Pick<Plugins, K>> | undefined => {
      const plugin = chosen.find((d) => d.kind === kind) as StorePlugin | SyncPlugin | ConfigPlugin | undefined;
      if (!plugin) return undefined;
      let opening: Promise<StoreBackend | SyncBackend | ConfigBackend> | undefined;
      made.push(() => opening);
      const open = () =>
        (opening ??= plugin.create(context).catch((err: unknown) => {
          opening = undefined;
          throw err;
        }));
      return { [kind]: open } as Partial<Pick<Plugins, K>>;
    };
    return {
      registry,
      broker,
      transports,
      ...lazily('store'),
      ...lazily('sync'),
      ...lazily('config'),
      async close() {
        const closing = await Promise.all(made.map((m) => m()?.catch(() => undefined)));
        await Promise.allSettled([...opened, ...closing].map((p) => p?.close?.()));
      },
    };
  } catch (err) {
    await Promise.allSettled(opened.map((p) => p.close?.()));
    throw err;
  }
}

/**
 * The tracers of a host whose environment asks for an exporter (OTEL_EXPORTER_OTLP_ENDPOINT, say), for a Runner's
 * `tracing`: each records its invocation's spans; the exporter is loaded once, when the first are sent, and a load
 * that failed is tried again by the next. Undefined when the environment asks for none: then nothing is recorded
 * and nothing of the exporter is loaded.
 */
export function tracingOf(env: Env, platform: Platform = 'node'): TracerFactory | undefined {
  // A bundle that carries no exporter (build-constants.ts) carries none of this either.
  const plugin = globalThis.__MICRO_FN_NO_EXPORTER__
    ? undefined
    : available('exporter', platform).find((e) => e.enabled(env));
  return globalThis.__MICRO_FN_NO_EXPORTER__ || !plugin ? undefined : exporterTracing(env, platform, plugin);
}

/** The tracers of `plugin`: each records its invocation's spans, and the exporter is loaded once, when first used. */
function exporterTracing(env: Env, platform: Platform, plugin: ExporterPlugin): TracerFactory {
  let loaded: Promise<SpanExporter> | undefined;
  const load = (service: string) =>
    (loaded ??= plugin.create(contextOf(env, readConfig(env), platform, {}), service).catch((err: unknown) => {
      loaded = undefined;
      throw err;
    }));
  return (service) => plugin.tracer(() => load(service));
}

/** The transport a standalone function listens with (`MICRO_TRANSPORT`, default http). */
export function listenTransport(env: Env, plugins: Plugins): Transport {
  const name = readConfig(env).transport ?? 'http';
  const descriptor = choose('transport', name, 'node');
  const found = plugins.transports.find((t) => descriptor?.schemes.some((s) => t.schemes.includes(s)));
  if (!found) throw new ConfigError(`MICRO_TRANSPORT=${name} is not among this host's transports`);
  return found;
}
