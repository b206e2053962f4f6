/**
 * What `micro-fn serve` offers the parts it hosts beside local functions (the local Lambda API, its event bridge):
 * one hook, so serve's runtime names none of them. An extension mounts HTTP APIs on the gateway, starts with serve
 * and stops with it. The table of extensions is serve/extensions.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BrokerMessage, DeliveryFailure, Subscription } from '../runtime/core/broker.js';
import type { Env } from '../runtime/core/config.js';
import type { Credential } from '../runtime/core/credential.js';
import type { Registry } from '../runtime/core/registry.js';
import type { Launcher } from './launcher.js';
import type { InvocationEvent } from './observe/event.js';

/** serve, as an extension sees it. */
export interface Host {
  /** MICRO_FN_HOME. */
  home: string;
  /** This serve's node id: unique per process, for folders of its own. */
  nodeId: string;
  registry: Registry;
  /** serve's environment (AWS settings, MICRO_*). */
  env: Env;
  /** serve's credential (MICRO_FN_HOME/auth/credential.json): the keys an API serve hosts checks callers against. */
  credential: Credential;
  /** What every function process is started through, confined (serve/launcher.ts). */
  launcher: Launcher;
  /** What every function serve runs starts from: serve's MICRO_* settings and its MICRO_FN_HOME. */
  functionEnv(): Record<string, string>;
  /** Invocations at once per function (`serve --concurrency`). */
  concurrency: number;
  /**
   * This serve's state folder (serve/state.ts): what an extension keeps there is for the next serve at this address,
   * which restores it. None when serve keeps no state (it listens on port 0).
   */
  state: string | undefined;
  /** Seconds a registry entry serve refreshes lives without a refresh (serve refreshes at half of it). */
  ttl: number;
  /** The gateway's address (`http://127.0.0.1:52980`), once serve listens. */
  address(): string;
  /** This serve's identity: the same for every serve at its address from its MICRO_FN_HOME, once serve listens. */
  id(): string;
  /** Appends a line to function `name`'s log (`micro-fn logs`), tagged with an invocation id. */
  log(name: string, invocation: string, line: string): void;
  /** One line on serve's own output. */
  say(line: string): void;
  /** Reports an invocation as it ends (the request log, the stats, the feed); absent when serve makes no events. */
  invocation?: (event: InvocationEvent) => void;
  /**
   * Triggers function `name` from `topic` on serve's broker (queue group: the name), as for local functions: `run`
   * handles one message; true acks it, false or why it failed naks it (redelivered with backoff, then dead-lettered
   * with each attempt's failure).
   */
  trigger(
    name: string,
    topic: string,
    run: (message: BrokerMessage) => Promise<boolean | DeliveryFailure>,
  ): Promise<Subscription>;
}

/** A part serve hosts. */
export interface Extension {
  /** HTTP APIs served on the gateway beside mucp, by path prefix; a handler must answer. */
  mounts?: Record<string, (req: IncomingMessage, res: ServerResponse) => void>;
  start?(): Promise<void>;
  stop(): Promise<void>;
}

export type ExtensionFactory = (host: Host) => Extension;
