/**
 * The function's own configuration (issue 17, go-micro's `config`): what a handler reads as `ctx.config`. Not the
 * runtime's configuration (config.ts: the `MICRO_*` variables that choose plugins), which only micro-fn reads.
 *
 * Three layers, each later one overriding the earlier ones key by key:
 * 1. `env`: the function's environment (as deployed: `--env`, Lambda's environment, a Worker's vars), under the
 *    variables' own names; the runtime's `MICRO_*` variables are not configuration and are left out.
 * 2. `file`: the JSON object in `config.json` beside the function's entry, bundled in at build on every target.
 * 3. `kv`: what `micro-fn config set` wrote, kept by the config plugin (`MICRO_CONFIG`: serve's local store, a
 *    JetStream KV bucket, memory) as one JSON object per function, so a read of it is one consistent snapshot.
 *
 * An invocation reads one snapshot of all three, taken at its first read and kept for the rest of it: a change made
 * meanwhile is not seen by it (the next invocation sees it). A handler that keeps running (a stream, a long-running
 * service) sees changes with `watch`, which polls the `kv` layer.
 */
import { MicroError, errors } from './errors.js';
import type { Logger } from './context.js';
import { checkKey, type StoreBackend } from './store.js';
import { configFile } from './config-file.js';

/** The layers, lowest first. */
export const CONFIG_SOURCES = ['env', 'file', 'kv'] as const;
export type ConfigSource = (typeof CONFIG_SOURCES)[number];

/** The id of config errors: a value of the wrong type (500: the function's configuration is wrong), bad input (400). */
export const CONFIG_ERROR = 'micro-fn.config';
/** The store namespace of the `kv` layer: one key per function (its name), holding its keys as one JSON object. */
export const CONFIG_NAMESPACE = 'micro-fn.config';
/** Milliseconds between two reads of the `kv` layer by `watch`, by default, and at least. */
export const DEFAULT_WATCH_INTERVAL = 1000;
export const MIN_WATCH_INTERVAL = 50;

/** How each layer is named in an error, so a user knows where to fix a value. */
const SOURCE_NAMES: Record<ConfigSource, string> = {
  env: "the function's environment",
  file: 'config.json',
  kv: 'the config store (micro-fn config set)',
};

/**
 * What a config plugin opens: the store operations the `kv` layer is made of (get and compare-and-set of one key
 * per function). `absent` tells an error that means the source is not there at all (no `micro-fn serve` keeps the
 * local one): a function then reads the other layers, with a warning, rather than failing.
 */
export type ConfigBackend = Pick<StoreBackend, 'guarantees' | 'get' | 'set' | 'delete' | 'close'> & {
  absent?(err: unknown): boolean;
};

/** One value and the layer it came from. */
export interface ConfigValue {
  value: unknown;
  source: ConfigSource;
}

/** A change `watch` saw: `value` and `source` undefined when the key is gone from every layer. */
export interface ConfigChange {
  key: string;
  value: unknown;
  source: ConfigSource | undefined;
  /** The whole configuration as of this change. */
  snapshot: ConfigSnapshot;
}

export interface ConfigWatchOptions {
  /** Milliseconds between two reads of the `kv` layer (default 1000, at least 50). */
  interval?: number;
  /** Ends the watch. Default in a handler: the invocation's `ctx.signal`. */
  signal?: AbortSignal;
}

/** Typed reads of one consistent snapshot: synchronous, the same answer every time. */
export interface ConfigSnapshot {
  /** The `kv` layer's revision (0: it has no keys for this function). */
  readonly revision: number;
  has(key: string): boolean;
  /** The keys that start with `prefix`, sorted. */
  keys(prefix?: string): string[];
  /** The layer `key`'s value comes from. */
  source(key: string): ConfigSource | undefined;
  /** The value as its layer holds it (environment values are strings), or undefined. */
  get(key: string): unknown;
  /** Read as the fallback's type: `get('port', 8080)` is `number(...)`, `get('debug', false)` is `bool(...)`. */
  get<T extends string | number | boolean>(key: string, fallback: T): Widen<T>;
  /** A string (a number or boolean as its text); an object is a 500 naming the key and its layer. */
  string(key: string): string | undefined;
  string(key: string, fallback: string): string;
  /** A number, or a string that is one (`"8080"`); anything else is a 500 naming the key and its layer. */
  number(key: string): number | undefined;
  number(key: string, fallback: number): number;
  /** A boolean, or `true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off` as text. */
  bool(key: string): boolean | undefined;
  bool(key: string, fallback: boolean): boolean;
  /** The value as JSON: text (an environment variable, a `config set` value) is parsed; others are as they are. */
  json<T = unknown>(key: string): T | undefined;
  json<T = unknown>(key: string, fallback: T): T;
  /** Every key's value, as a plain object. */
  toJSON(): Record<string, unknown>;
}

export type Widen<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean : never;

/**
 * `ctx.config`: the configuration as the invocation's snapshot has it (taken at its first read), and `watch` for a
 * handler that keeps running.
 * @example
 * async Hello(req: { name: string }, ctx: Context) {
 *   const greeting = await ctx.config.string('greeting', 'Hello');
 *   const shout = await ctx.config.bool('shout', false);
 *   const message = `${greeting} ${req.name}`;
 *   return { message: shout ? message.toUpperCase() : message };
 * }
 * @example
 * // A stream that follows the configuration while it runs.
 * async *Follow(_req: unknown, ctx: Context) {
 *   for await (const change of ctx.config.watch('feature.')) yield { key: change.key, value: change.value };
 * }
 */
export interface Config {
  /** The function whose configuration this is. */
  readonly name: string;
  /** This invocation's snapshot: read on the first call, the same object after. */
  snapshot(): Promise<ConfigSnapshot>;
  get(key: string): Promise<unknown>;
  get<T extends string | number | boolean>(key: string, fallback: T): Promise<Widen<T>>;
  string(key: string): Promise<string | undefined>;
  string(key: string, fallback: string): Promise<string>;
  number(key: string): Promise<number | undefined>;
  number(key: string, fallback: number): Promise<number>;
  bool(key: string): Promise<boolean | undefined>;
  bool(key: string, fallback: boolean): Promise<boolean>;
  json<T = unknown>(key: string): Promise<T | undefined>;
  json<T = unknown>(key: string, fallback: T): Promise<T>;
  /**
   * The changes of the keys that start with `prefix` (all with ''), from this invocation's snapshot on, as the `kv`
   * layer changes (read every `interval`); ends when the signal fires. A long-running handler's way to follow it.
   */
  watch(prefix?: string, options?: ConfigWatchOptions): AsyncIterableIterator<ConfigChange>;
}

export interface ConfigOptions {
  /** The function's name: the key of its `kv` layer. */
  service: string;
  /** The function's environment (`ctx.env`); its string values other than `MICRO_*` are the `env` layer. */
  env: Readonly<Record<string, unknown>>;
  /** The shipped `config.json` (a JSON object). Default: the one the bundle carries (config-file.ts), if any. */
  file?: unknown;
  /** Opens the config plugin on the first read; absent: no `kv` layer. */
  open?: () => Promise<ConfigBackend | undefined>;
  /** The default signal of `watch` (a handler's `ctx.signal`). */
  signal?: () => AbortSignal | undefined;
  /** Where a `kv` layer that is not there is reported (once per source). */
  logger?: Pick<Logger, 'warn'>;
}

/** Sources found absent and reported so: each is reported once. */
const reportedAbsent = new WeakSet<ConfigBackend>();

/** The Config of one function (a handler's `ctx.config` is one per invocation). */
export function createConfig(options: ConfigOptions): Config {
  checkKey(options.service, 'function name');
  return new LayeredConfig(options);
}

class LayeredConfig implements Config {
  readonly name: string;
  readonly #options: ConfigOptions;
  /** The `file` layer; it and the environment never change while the process runs. */
  readonly #file: Map<string, ConfigValue>;
  #snapshot: Promise<ConfigSnapshot> | undefined;

  constructor(options: ConfigOptions) {
    this.name = options.service;
    this.#options = options;
    this.#file = new Map();
    const file = 'file' in options ? options.file : configFile;
    for (const [key, value] of Object.entries(fileObject(file))) this.#file.set(key, { value, source: 'file' });
  }

  snapshot(): Promise<ConfigSnapshot> {
    return (this.#snapshot ??= this.#read().catch((err: unknown) => {
      this.#snapshot = undefined; // a failed read is not kept: the next one tries again
      throw err;
    }));
  }

  async #read(): Promise<Snapshot> {
    const backend = await this.#options.open?.();
    if (!backend) return new Snapshot(this.#options.env, this.#file, {}, 0);
    try {
      const kv = await readKv(backend, this.name);
      return new Snapshot(this.#options.env, this.#file, kv.values, kv.revision);
    } catch (err) {
      if (!backend.absent?.(err)) throw err;
      // Said once per process: a warm Lambda environment, say, takes a snapshot per invocation.
      if (!reportedAbsent.has(backend)) {
        reportedAbsent.add(backend);
        this.#options.logger?.warn(`config: ${(err as Error).message}; reading the environment and config.json only`);
      }
      return new Snapshot(this.#options.env, this.#file, {}, 0);
    }
  }

  // The implementations of the interface's overloads: the overloads type what callers get.
  async get(key: string, fallback?: string | number | boolean): Promise<any> {
    return (await this.snapshot()).get(key, fallback as string);
  }
  async string(key: string, fallback?: string): Promise<any> {
    return (await this.snapshot()).string(key, fallback as string);
  }
  async number(key: string, fallback?: number): Promise<any> {
    return (await this.snapshot()).number(key, fallback as number);
  }
  async bool(key: string, fallback?: boolean): Promise<any> {
    return (await this.snapshot()).bool(key, fallback as boolean);
  }
  async json(key: string, fallback?: unknown): Promise<any> {
    return (await this.snapshot()).json(key, fallback);
  }

  async *watch(prefix = '', options: ConfigWatchOptions = {}): AsyncIterableIterator<ConfigChange> {
    if (prefix !== '') checkKey(prefix, 'config prefix');
    const interval = options.interval ?? DEFAULT_WATCH_INTERVAL;
    if (!(Number.isSafeInteger(interval) && interval >= MIN_WATCH_INTERVAL))
      throw errors.badRequest(
        CONFIG_ERROR,
        `interval must be a whole number of milliseconds of at least ${MIN_WATCH_INTERVAL}; got ${String(interval)}`,
      );
    const signal = options.signal ?? this.#options.signal?.();
    let seen = (await this.snapshot()) as Snapshot;
    const backend = await this.#options.open?.();
    if (!backend) {
      // No kv layer: nothing ever changes. Wait for the end all the same, so a loop around the watch does not spin.
      await pause(Infinity, signal);
      return;
    }
    let failing: string | undefined;
    while (await pause(interval, signal)) {
      let kv: { values: Record<string, unknown>; revision: number };
      try {
        kv = await readKv(backend, this.name);
        failing = undefined;
      } catch (err) {
        // A source that is down for a while (serve restarting, NATS failing over) is read again next time; said once.
        const message = (err as Error).message;
        if (message !== failing) this.#options.logger?.warn(`config: watching ${this.name}: ${message}`);
        failing = message;
        continue;
      }
      if (kv.revision === seen.revision) continue;
      const next = new Snapshot(this.#options.env, this.#file, kv.values, kv.revision);
      // Only the kv layer changes: its keys, before and after, are all that may have.
      for (const key of new Set([...seen.kvKeys, ...next.kvKeys].filter((k) => k.startsWith(prefix)).sort())) {
        const was = seen.entry(key);
        const now = next.entry(key);
        if (was?.source === now?.source && sameJson(was?.value, now?.value)) continue;
        if (signal?.aborted) return;
        yield { key, value: now?.value, source: now?.source, snapshot: next };
      }
      seen = next;
    }
  }
}

/** The `kv` layer of `service`: its object and revision (an absent key is an empty layer at revision 0). */
export async function readKv(
  backend: Pick<ConfigBackend, 'get'>,
  service: string,
): Promise<{ values: Record<string, unknown>; revision: number }> {
  const raw = await backend.get(CONFIG_NAMESPACE, service);
  if (!raw) return { values: {}, revision: 0 };
  const values = JSON.parse(raw.value) as unknown;
  if (!isObject(values))
    throw new MicroError(
      CONFIG_ERROR,
      500,
      `the config store's entry of ${service} is not a JSON object (micro-fn store delete ${CONFIG_NAMESPACE} ${service} clears it)`,
    );
  return { values, revision: raw.revision };
}

/** Resolves true after `ms`, false at once when `signal` fires (at once with no signal when `ms` is Infinity). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted || (ms === Infinity && !signal)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (go: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
      resolve(go);
    };
    const stop = () => done(false);
    const timer = ms === Infinity ? undefined : setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', stop, { once: true });
  });
}

function fileObject(file: unknown): Record<string, unknown> {
  if (file === undefined) return {};
  if (!isObject(file))
    throw new MicroError(CONFIG_ERROR, 500, 'config.json must hold a JSON object of keys, like {"greeting": "Hello"}');
  return file;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

// Regular expressions rather than Sets: a `new` at module level would keep this module in bundles that never use it.
const TRUE = /^(true|1|yes|on)$/;
const FALSE = /^(false|0|no|off)$/;

class Snapshot implements ConfigSnapshot {
  /** The `file` and `kv` layers; the environment is read a variable at a time (Deno allows variables one by one). */
  readonly #values: Map<string, ConfigValue>;
  readonly #env: Readonly<Record<string, unknown>>;
  /** The keys of the `kv` layer. */
  readonly kvKeys: string[];

  constructor(
    env: Readonly<Record<string, unknown>>,
    file: ReadonlyMap<string, ConfigValue>,
    kv: Record<string, unknown>,
    readonly revision: number,
  ) {
    this.#env = env;
    this.#values = new Map(file);
    for (const [key, value] of Object.entries(kv)) this.#values.set(key, { value, source: 'kv' });
    this.kvKeys = Object.keys(kv);
  }

  entry(key: string): ConfigValue | undefined {
    return this.#values.get(key) ?? envEntry(this.#env, key);
  }

  has(key: string): boolean {
    return this.entry(key) !== undefined;
  }

  keys(prefix = ''): string[] {
    const all = new Set([...envKeys(this.#env), ...this.#values.keys()]);
    return [...all].filter((k) => k.startsWith(prefix)).sort();
  }

  source(key: string): ConfigSource | undefined {
    return this.entry(key)?.source;
  }

  // As in LayeredConfig, `any` implements the overloads the interface declares.
  get(key: string, fallback?: string | number | boolean): any {
    switch (typeof fallback) {
      case 'string':
        return this.string(key, fallback);
      case 'number':
        return this.number(key, fallback);
      case 'boolean':
        return this.bool(key, fallback);
      default:
        return this.entry(key)?.value;
    }
  }

  string(key: string, fallback?: string): any {
    return this.#typed(key, fallback, 'a string', (v) =>
      typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined,
    );
  }

  number(key: string, fallback?: number): any {
    return this.#typed(key, fallback, 'a number', (v) => {
      if (typeof v === 'number') return v;
      if (typeof v !== 'string' || v.trim() === '') return undefined;
      const n = Number(v);
      return Number.isFinite(n) ? n : undefined;
    });
  }

  bool(key: string, fallback?: boolean): any {
    return this.#typed(key, fallback, 'a boolean (true, false, 1, 0, yes, no, on, off)', (v) => {
      if (typeof v === 'boolean') return v;
      const text = typeof v === 'string' || typeof v === 'number' ? String(v).trim().toLowerCase() : '';
      return TRUE.test(text) ? true : FALSE.test(text) ? false : undefined;
    });
  }

  json(key: string, fallback?: unknown): any {
    const found = this.entry(key);
    if (!found) return fallback;
    if (typeof found.value !== 'string') return found.value;
    try {
      return JSON.parse(found.value as string);
    } catch (err) {
      throw wrongType(key, found, `JSON (${(err as Error).message})`);
    }
  }

  toJSON(): Record<string, unknown> {
    return Object.fromEntries(this.keys().map((k) => [k, this.entry(k)!.value]));
  }

  #typed<T>(
    key: string,
    fallback: T | undefined,
    what: string,
    read: (value: unknown) => T | undefined,
  ): T | undefined {
    checkKey(key, 'config key');
    const found = this.entry(key);
    if (!found) return fallback;
    const value = read(found.value);
    if (value === undefined) throw wrongType(key, found, what);
    return value;
  }
}

/** A variable of the environment layer; the runtime's own (`MICRO_*`) are not configuration. */
function envEntry(env: Readonly<Record<string, unknown>>, key: string): ConfigValue | undefined {
  if (key.startsWith('MICRO_')) return undefined;
  let value: unknown;
  try {
    value = Object.hasOwn(env, key) ? env[key] : undefined;
  } catch {
    return undefined; // Deno: a variable not allowed (--allow-env) is no configuration of the function
  }
  return typeof value === 'string' ? { value, source: 'env' } : undefined;
}

/** The names of the environment layer, as far as the platform lets them be listed (Deno: all variables allowed). */
function envKeys(env: Readonly<Record<string, unknown>>): string[] {
  try {
    return Object.keys(env).filter((k) => envEntry(env, k) !== undefined);
  } catch {
    return [];
  }
}

function wrongType(key: string, found: ConfigValue, what: string): MicroError {
  const shown = JSON.stringify(found.value) ?? String(found.value);
  return new MicroError(
    CONFIG_ERROR,
    500,
    `config ${key} from ${SOURCE_NAMES[found.source]} is ${shown.length > 80 ? `${shown.slice(0, 77)}...` : shown}, not ${what}`,
  );
}
