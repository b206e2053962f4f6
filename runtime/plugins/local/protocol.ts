/**
 * The control protocol of `micro-fn serve`: the name of its control service and the request and response of
 * every endpoint. serve implements it (serve/control.ts); the local broker plugin, the local target's deploy and
 * the CLI call it. Both sides import this one module, so the shapes cannot drift apart.
 */
import type { FailedAttempt } from '../../core/broker.js';
import type { StreamKind } from '../../core/stream.js';
import type { Client } from '../../core/client.js';
import { UserError } from '../../core/errors.js';
import { isLoopback } from '../../core/loopback.js';
import type { Registry } from '../../core/registry.js';

/** The control service's name in the registry: `micro-fn`. */
export const RUNTIME_SERVICE = 'micro-fn';

/**
 * The variable in which serve gives each function process its store token: it opens the `Store.*` endpoints of the
 * control service, and nothing else (a function process cannot read serve's credential).
 */
export const STORE_TOKEN_ENV = 'MICRO_FN_STORE_TOKEN';

/** The control service's store endpoints, which a function process under serve may also send on its pipe. */
export type StoreEndpoint = 'Store.Get' | 'Store.Set' | 'Store.Delete' | 'Store.List';

/** A value of serve's store as `Store.Get` and `Store.List` return it: JSON text and its revision. */
export interface StoredValue {
  value: string;
  revision: number;
}

/** What `Runtime.Deploy` takes: a bundle built for the local target, and its limits. */
export interface DeployRequest {
  /** Absolute path of the bundle's `index.mjs`. */
  bundle: string;
  /** The entry it was built from (for `serve --watch` and `describe`). */
  entry?: string;
  /** Environment the function declares; its processes get only this plus `MICRO_*`. */
  env?: Record<string, string>;
  pool?: number;
  /** Milliseconds per invocation. */
  timeout?: number;
  /** MiB of resident memory per process. */
  memory?: number;
  /** Invocations at once, and waiting, before 429. */
  concurrency?: number;
  queue?: number;
}

/** A deployed function, as `Runtime.Deploy` and `Runtime.List` describe it. */
export interface FunctionInfo {
  name: string;
  version: string;
  endpoints: string[];
  /** The endpoints that stream, and how (registry metadata `stream`); absent: none does. */
  streams?: Record<string, StreamKind>;
  topics: string[];
  bundle: string;
  entry?: string;
  pool: number;
  /** The gateway address it is registered at. */
  address: string;
}

/** A function's pool figures, as `Runtime.List` reports them. */
export interface PoolStats {
  /** Processes started and waiting for an invocation. */
  warm: number;
  /** Processes starting. */
  starting: number;
  /** Invocations running. */
  inflight: number;
  /** Calls waiting for a slot (bounded: 429 past the limit). */
  queued: number;
  /** Messages waiting for a slot (unbounded: they are already taken from the broker). */
  backlog: number;
  /** Warm processes the pool keeps now: its floor (`--pool`), more while calls come fast (serve/pool.ts). */
  target?: number;
  /** Processes started since the function was deployed. */
  started?: number;
}

/** Durations over a recent window (ms), as `Runtime.Stats` reports them; p50/p99 absent when it holds nothing. */
export interface WindowSummary {
  /** The window's length. */
  seconds: number;
  /** Invocations that ended in it, and how many of them failed. */
  count: number;
  errors: number;
  p50?: number;
  p99?: number;
}

/** One function's figures, as `Runtime.Stats` reports them (`micro-fn ps`). Counts are since serve started. */
export interface FunctionStats {
  name: string;
  /** `local`: a function deployed to serve; `lambda`: one of serve's Lambda API. */
  kind: 'local' | 'lambda';
  /** Its processes now (local functions). */
  pool?: PoolStats;
  /** Invocations started, those that failed, and those that waited for a process to start. */
  invocations: number;
  errors: number;
  coldStarts: number;
  /** Calls dropped before they started (queue full, caller gone, deadline or queue wait passed). */
  notStarted: number;
  recent: WindowSummary;
  /** When its last invocation ended (ISO 8601). */
  last?: string;
}

/** Messages of serve's broker per topic and queue group: waiting for delivery, and handed out and not settled. */
export interface TopicStats {
  topic: string;
  group: string;
  waiting: number;
  inflight: number;
}

/** What `Runtime.Stats` returns: the figures `micro-fn ps` prints and the dashboard charts. */
export interface RuntimeStats {
  /** When the figures were read (ISO 8601), and how long serve has run (s). */
  at: string;
  uptime: number;
  functions: FunctionStats[];
  /** serve's own broker (absent for a shared one, whose server keeps its figures). */
  broker?: { topics: TopicStats[]; deadLetters: { topic: string; count: number }[]; messages: number; bytes: number };
}

/** One delivery as `Broker.Poll` hands it to a subscriber in another process. */
export interface RemoteDelivery {
  /** Names this delivery in `Broker.Settle`. */
  token: string;
  id: string;
  topic: string;
  headers: Record<string, string>;
  /** UTF-8 text of the body. */
  body: string;
  attempt: number;
}

/** A dead-lettered message, as `Dlq.List` returns it. */
export interface DeadLetter {
  id: string;
  topic: string;
  headers: Record<string, string>;
  /** UTF-8 text of the body. */
  body: string;
  /** When it was dead-lettered (ISO 8601). */
  at: string;
  /** Each failed attempt's error (code, detail, time), oldest first, as far as the broker was told. */
  attempts?: FailedAttempt[];
}

/** Every control endpoint: its request and its response. */
export interface ControlApi {
  'Runtime.Deploy': { request: DeployRequest; response: FunctionInfo };
  'Runtime.Remove': { request: { name: string }; response: { removed: string } };
  'Runtime.List': { request: Record<string, never>; response: { functions: (FunctionInfo & { stats: PoolStats })[] } };
  /** Per function and for the broker: pool state, counts, p50/p99 over the last minutes (`micro-fn ps`). */
  'Runtime.Stats': { request: Record<string, never>; response: RuntimeStats };
  /** `body`: already encoded text (the local broker plugin); `payload`: a JSON value (the CLI). */
  'Broker.Publish': {
    request: { topic: string; headers?: Record<string, string>; body?: string; payload?: unknown };
    response: Record<string, never>;
  };
  'Broker.Subscribe': {
    request: { topic: string; queue?: string; max?: number };
    response: { id: string; ackWait: number };
  };
  /** A long poll: `wait` milliseconds at most (serve caps it at 25 s). */
  'Broker.Poll': { request: { id: string; wait: number }; response: { delivery: RemoteDelivery | null } };
  /** `error`: why a nak failed the delivery (kept with the attempt in a dead letter). */
  'Broker.Settle': {
    request: {
      id: string;
      token: string;
      action: SettleAction;
      delay?: number;
      reason?: string;
      error?: { code: number; detail: string };
    };
    response: Record<string, never>;
  };
  'Broker.Unsubscribe': { request: { id: string }; response: Record<string, never> };
  'Dlq.List': { request: { topic: string }; response: { messages: DeadLetter[] } };
  'Dlq.Replay': { request: { topic: string }; response: { replayed: number } };
  /** The key-value store (serve/store-control.ts); `value` is JSON text. Open to the control and store tokens. */
  'Store.Get': { request: { namespace: string; key: string }; response: { entry: StoredValue | null } };
  'Store.Set': {
    request: { namespace: string; key: string; value: string; ttl?: number; revision?: number };
    response: { revision: number };
  };
  'Store.Delete': { request: { namespace: string; key: string; revision?: number }; response: { deleted: boolean } };
  'Store.List': {
    request: { namespace: string; prefix: string; limit: number; cursor?: string };
    response: { entries: (StoredValue & { key: string })[]; cursor?: string };
  };
  /** A one-time login URL of serve's dashboard (`micro-fn dashboard`); 404 when serve runs without one. */
  'Dashboard.Login': { request: Record<string, never>; response: { url: string; expires: string } };
}

export type ControlEndpoint = keyof ControlApi;

/** What a subscriber in another process does with a delivery; `progress` extends its ack wait. */
export type SettleAction = 'ack' | 'nak' | 'term' | 'progress';

export const SETTLE_ACTIONS: readonly SettleAction[] = ['ack', 'nak', 'term', 'progress'];

export interface ControlCallOptions {
  /** Milliseconds for the call (default 30 000). */
  timeout?: number;
  /** The serve's address, skipping the registry lookup. */
  address?: string;
  /** Further attempts, only where the handler provably did not run (default 0). */
  retries?: number;
  /**
   * serve's control token (its credential's `control`), sent as `Authorization: Bearer …`. Give it only for an
   * address on this machine (controlToken does that): it is the key to everything serve does.
   */
  token?: string;
}

/** Calls `endpoint` of serve's control service through `client`, typed by ControlApi. */
export function callControl<E extends ControlEndpoint>(
  client: Client,
  endpoint: E,
  request: ControlApi[E]['request'],
  options: ControlCallOptions = {},
): Promise<ControlApi[E]['response']> {
  return client.call<ControlApi[E]['response']>(RUNTIME_SERVICE, endpoint, request, {
    timeout: options.timeout ?? 30_000,
    retries: options.retries ?? 0,
    address: options.address,
    ...(options.token ? { metadata: { authorization: `Bearer ${options.token}` } } : {}),
  });
}

/**
 * The control token to send to the serve at `address`: the one in MICRO_FN_HOME's credential (`read` reads it) when
 * the address is on this machine, else none, so a service registered under serve's name elsewhere never gets it.
 */
export function controlToken(address: string, read: () => { control: string } | undefined): string | undefined {
  return isLoopback(address) ? read()?.control : undefined;
}

/**
 * The address of the `micro-fn serve` to talk to: `chosen` when given, else the one the registry holds. None, or
 * several with no choice made, is a UserError that says what to do.
 */
export async function runtimeAddress(registry: Registry, chosen?: string): Promise<string> {
  if (chosen) return chosen;
  const nodes = (await registry.getService(RUNTIME_SERVICE)).flatMap((s) => s.nodes);
  if (nodes.length === 0)
    throw new UserError(
      'no `micro-fn serve` is running for this registry (MICRO_FN_HOME, MICRO_REGISTRY): start one with `micro-fn serve`',
    );
  if (nodes.length > 1)
    throw new UserError(
      `${nodes.length} micro-fn serve runtimes are registered (${nodes.map((n) => n.address).join(', ')}): choose one with --runtime URL`,
    );
  return nodes[0]!.address;
}
