import { UserError } from './errors.js';

/**
 * The runtime's settings read from the environment, go-micro's names: which plugins a host uses. Not a function's own
 * configuration, which its handlers read as `ctx.config` (function-config.ts).
 */
export interface RuntimeConfig {
  /** `MICRO_REGISTRY`: memory | local | nats. */
  registry: string | undefined;
  registryAddress: string | undefined;
  /** `MICRO_BROKER`: memory | local | nats | jetstream. */
  broker: string | undefined;
  brokerAddress: string | undefined;
  /** `MICRO_STORE`: memory | local | nats | cloudflare-kv (the key-value store of `ctx.store`). */
  store: string | undefined;
  storeAddress: string | undefined;
  /** `MICRO_SYNC`: memory | local | nats (the locks and elections of `ctx.sync`). */
  sync: string | undefined;
  syncAddress: string | undefined;
  /** `MICRO_CONFIG`: memory | local | nats (where `micro-fn config set` keeps the keys of `ctx.config`). */
  config: string | undefined;
  configAddress: string | undefined;
  /** `MICRO_TRANSPORT`: what a standalone function listens with, http (default) | nats. */
  transport: string | undefined;
  /** `MICRO_SERVER_ADDRESS`, e.g. `127.0.0.1:0`. */
  serverAddress: string | undefined;
  /** `MICRO_REGISTER_TTL`, seconds (default 60). */
  registerTtl: number;
  /** `MICRO_REGISTER_INTERVAL`, seconds (default 30). */
  registerInterval: number;
  /**
   * `MICRO_FN_TIMEOUT`, milliseconds a handler or subscriber may run (`5000`, or with a unit: `500ms`, `30s`, `2m`);
   * a caller's `Micro-Timeout` can only make it shorter. Undefined: the caller's deadline alone.
   */
  timeout: number | undefined;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** A configuration mistake; its message says how to fix it. */
export class ConfigError extends UserError {}

/** Reads and validates the `MICRO_*` variables of `env`. Throws ConfigError on a bad value. */
export function readConfig(env: Env): RuntimeConfig {
  const ttl = seconds(env, 'MICRO_REGISTER_TTL', 60);
  const interval = seconds(env, 'MICRO_REGISTER_INTERVAL', 30);
  if (ttl > 0 && interval >= ttl) {
    throw new ConfigError(
      `MICRO_REGISTER_INTERVAL (${interval}s) must be shorter than MICRO_REGISTER_TTL (${ttl}s), or entries expire between refreshes`,
    );
  }
  return {
    registry: nonEmpty(env.MICRO_REGISTRY),
    registryAddress: nonEmpty(env.MICRO_REGISTRY_ADDRESS),
    broker: nonEmpty(env.MICRO_BROKER),
    brokerAddress: nonEmpty(env.MICRO_BROKER_ADDRESS),
    store: nonEmpty(env.MICRO_STORE),
    storeAddress: nonEmpty(env.MICRO_STORE_ADDRESS),
    sync: nonEmpty(env.MICRO_SYNC),
    syncAddress: nonEmpty(env.MICRO_SYNC_ADDRESS),
    config: nonEmpty(env.MICRO_CONFIG),
    configAddress: nonEmpty(env.MICRO_CONFIG_ADDRESS),
    transport: nonEmpty(env.MICRO_TRANSPORT),
    serverAddress: nonEmpty(env.MICRO_SERVER_ADDRESS),
    registerTtl: ttl,
    registerInterval: interval,
    timeout: readTimeout(env),
  };
}

/** `MICRO_FN_TIMEOUT` alone, checked as readConfig does: what a function that never listens reads. */
export function readTimeout(env: Env): number | undefined {
  return milliseconds(env, 'MICRO_FN_TIMEOUT');
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

const UNITS: Record<string, number> = { '': 1, ms: 1, s: 1000, m: 60_000 };

/** A positive duration in milliseconds: `5000`, `500ms`, `30s`, `2m`; undefined when unset. */
function milliseconds(env: Env, name: string): number | undefined {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw);
  const ms = match ? Math.round(Number(match[1]) * UNITS[match[2] ?? '']!) : NaN;
  if (!(ms > 0))
    throw new ConfigError(`${name} must be a duration like 30s, 500ms or 30000 (milliseconds); got "${raw}"`);
  return ms;
}

function seconds(env: Env, name: string, fallback: number): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  // go-micro takes whole seconds; a unit suffix is a common slip, so accept "30s" as well.
  const match = /^(\d+)s?$/.exec(raw);
  if (!match) throw new ConfigError(`${name} must be a whole number of seconds, like ${fallback}; got "${raw}"`);
  return Number(match[1]);
}
