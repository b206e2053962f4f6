/**
 * The one place that opens NATS connections (and the only importer of the `nats` package besides the other
 * files of this plugin). The package is loaded when the first connection is opened, never at start-up. Inside a
 * Worker the same code connects over WebSocket: the Workers build bundles `nats.ws` (nats.js's API over the
 * platform's WebSocket) for `nats`, and the addresses are `ws://` or `wss://` (nats-server's websocket listener).
 */
import type { ConnectionOptions, NatsConnection } from 'nats';
import { ConfigError } from '../../core/config.js';
import { errors } from '../../core/errors.js';

export interface NatsConnectOptions {
  /** `nats://[user:pass@|token@]host:port` (`ws://`/`wss://` in a Worker), several separated by commas. */
  address: string;
  /** Shown by `nats server report connections`. */
  name?: string;
}

/**
 * Connection options from an address: `nats://host:port`, `nats://user:pass@host:port` or
 * `nats://token@host:port`; a bare `host:port` means `nats://`. Throws a ConfigError that shows the forms.
 */
export function natsConnectionOptions(address: string, name?: string): ConnectionOptions {
  const servers: string[] = [];
  let user: string | undefined;
  let pass: string | undefined;
  let token: string | undefined;
  for (const part of address
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(/^[a-z]+:\/\//i.test(part) ? part : `nats://${part}`);
    } catch {
      throw new ConfigError(
        `a NATS address looks like nats://127.0.0.1:4222 or nats://user:pass@host:4222; got "${part}"`,
      );
    }
    if (!['nats:', 'tls:', 'ws:', 'wss:'].includes(url.protocol) || !url.hostname) {
      throw new ConfigError(
        `a NATS address looks like nats://127.0.0.1:4222 or nats://user:pass@host:4222; got "${part}"`,
      );
    }
    if (url.username && url.password)
      ((user = decodeURIComponent(url.username)), (pass = decodeURIComponent(url.password)));
    else if (url.username) token = decodeURIComponent(url.username);
    servers.push(`${url.protocol}//${url.host}`);
  }
  if (servers.length === 0)
    throw new ConfigError(
      'a NATS address is needed, like nats://127.0.0.1:4222 (MICRO_REGISTRY_ADDRESS / MICRO_BROKER_ADDRESS)',
    );
  // noAsyncTraces: nats.js would capture a stack (new Error()) for every request and publish; the errors we
  // raise name the subject and the cause instead, and a call is ~10% cheaper without it.
  return { servers, user, pass, token, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true };
}

/** Opens a connection; a failure to reach the server is a retryable 503 with the cause kept. */
export async function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  const config = natsConnectionOptions(options.address, options.name);
  const { connect } = await import('nats');
  try {
    return await connect(config);
  } catch (err) {
    throw errors.unavailable('micro-fn', `cannot connect to NATS at ${options.address}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
