import type { BrokerMessage, Broker } from './broker.js';
import type { Store } from './store.js';
import type { Sync } from './sync.js';
import type { Config } from './function-config.js';
import type { Client } from './client.js';
import type { Metadata } from './metadata.js';
import type { SpanContext } from './trace-context.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A logger writing one line per entry at the platform's own level: debug and info with `console.log` (stdout; INFO
 * on Lambda, `log` under wrangler), warn with `console.warn`, error with `console.error`. `prefix` names the
 * service; entries below `level` are dropped. (`micro-fn invoke` sends a function's stdout to stderr itself, so its
 * stdout carries only the reply.)
 */
export function createConsoleLogger(prefix: string, level: LogLevel = 'info'): Logger {
  const min = LEVELS[level] ?? LEVELS.info;
  const write = (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    const extra = fields && Object.keys(fields).length > 0 ? ` ${safeJSON(fields)}` : '';
    // Each level's console method, read at the call (a host may replace console's methods).
    console[lvl === 'warn' || lvl === 'error' ? lvl : 'log'](`[${prefix}] ${lvl} ${message}${extra}`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

function safeJSON(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) =>
      v instanceof Error ? { name: v.name, message: v.message, stack: v.stack } : v,
    );
  } catch {
    return '[unserializable]';
  }
}

/** What every handler and subscriber is given besides its payload. */
export interface BaseContext {
  /** Request id (`Micro-Id`) or message id. */
  readonly id: string;
  /** The name of the service handling it. */
  readonly service: string;
  /** Incoming metadata (case-insensitive keys). */
  readonly metadata: Metadata;
  /** Epoch milliseconds after which the caller no longer waits; undefined when it set none. */
  readonly deadline: number | undefined;
  /** Aborts when the deadline passes. Pass it on to fetch and friends. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** A client whose calls carry this request's deadline, namespace, authorization and trace id onwards. */
  readonly client: Client;
  /** The broker of the service, when it has one. */
  readonly broker: Broker | undefined;
  /**
   * The key-value store (`MICRO_STORE`) in this function's own namespace (its service name);
   * `ctx.store.namespace(name)` opens a shared one. Its plugin is opened on the first operation, never before.
   */
  readonly store: Store;
  /**
   * Locks with fencing tokens and leader election (`MICRO_SYNC`) in this function's own namespace; waits stop at
   * this invocation's `signal`. Its plugin is opened on the first lock, never before.
   */
  readonly sync: Sync;
  /**
   * The function's configuration, layered: its environment, then its `config.json`, then what `micro-fn config set`
   * wrote (`MICRO_CONFIG`). One snapshot per invocation, taken at its first read; `watch` follows changes.
   */
  readonly config: Config;
  /** Configuration: the process environment, Lambda's environment, or a Worker's `env` bindings. */
  readonly env: Readonly<Record<string, unknown>>;
  /**
   * This invocation's span (W3C trace context) when the host records spans (it exports traces); calls and
   * publishes through `client` are its children. Otherwise undefined: a `traceparent` the caller sent is in
   * `metadata`, and `client` passes it on unchanged.
   */
  readonly trace: SpanContext | undefined;
}

/** Context of an RPC handler. */
export interface Context extends BaseContext {
  /** `Service.Method`. */
  readonly endpoint: string;
  /**
   * Metadata sent back to the caller with the reply. On a stream, what is set before the first message goes with
   * it (as headers); later changes are lost: set `trailers` then.
   */
  readonly responseMetadata: Metadata;
  /**
   * Metadata sent after the last message of a stream (HTTP trailers, SSE's `end` event, NATS's end marker). On a
   * plain endpoint it goes with the reply, merged into `responseMetadata`.
   */
  readonly trailers: Metadata;
}

/** Context of a subscriber. */
export interface MessageContext extends BaseContext {
  readonly topic: string;
  readonly message: BrokerMessage;
  /** 1 on first delivery. */
  readonly attempt: number;
}
