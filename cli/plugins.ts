/** The registry, broker and client a command works with, from the environment and the plugin flags. */
import { Client } from '../runtime/core/client.js';
import { userInfo } from 'node:os';
import { AUTH_TOKEN_ENV } from '../runtime/core/credential.js';
import { isLoopback } from '../runtime/core/loopback.js';
import { readCredential } from '../runtime/plugins/local/credential.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { UserError, isMicroError, type MicroError } from '../runtime/core/errors.js';
import {
  RUNTIME_SERVICE,
  callControl,
  controlToken,
  runtimeAddress,
  type ControlApi,
  type ControlEndpoint,
} from '../runtime/plugins/local/protocol.js';
import { resolvePlugins, type NodePlugins } from '../runtime/plugins/resolve.js';
import { envWithFlags, type OptionSpec } from './command.js';
import type { DeploySession } from '../adapters/kit/target.js';

export interface Session {
  env: Record<string, string | undefined>;
  plugins: NodePlugins;
  client: Client;
}

/** Opens the plugins, runs `fn`, and closes them whatever happens. */
export async function withSession<T>(
  values: Readonly<Record<string, unknown>>,
  fn: (session: Session) => Promise<T>,
): Promise<T> {
  const env = envWithFlags(values);
  const plugins = await resolvePlugins(env);
  // A token of the user's own (MICRO_AUTH_TOKEN) goes with every call and publish, as a function's does.
  const token = env[AUTH_TOKEN_ENV];
  const client = new Client({
    registry: plugins.registry,
    broker: plugins.broker,
    transports: plugins.transports,
    ...(token ? { metadata: { authorization: `Bearer ${token}` } } : {}),
  });
  try {
    return await fn({ env, plugins, client });
  } finally {
    await plugins.close();
  }
}

/**
 * The registry and client a target's deploy or remove may ask for: opened on first use only (most targets never
 * ask), closed by `close` whatever happened.
 */
export function lazyDeploySession(env: Record<string, string | undefined>): {
  session: () => Promise<DeploySession>;
  close: () => Promise<void>;
} {
  let opened: Promise<DeploySession & { close(): Promise<void> }> | undefined;
  return {
    session: () =>
      (opened ??= resolvePlugins(env).then((plugins) => ({
        registry: plugins.registry,
        client: new Client({ registry: plugins.registry, broker: plugins.broker, transports: plugins.transports }),
        close: () => plugins.close(),
      }))),
    close: async () => await (await opened?.catch(() => undefined))?.close(),
  };
}

/** Flag of the commands that talk to `micro-fn serve`. */
export const runtimeOption = {
  runtime: {
    type: 'string',
    value: 'URL',
    description: 'the micro-fn serve to talk to, when the registry holds several',
  },
} as const satisfies Record<string, OptionSpec>;

/** Calls the control service of the `micro-fn serve` found in the registry (or at `runtime`). */
export async function callRuntime<E extends ControlEndpoint>(
  session: Session,
  endpoint: E,
  request: ControlApi[E]['request'],
  options: { runtime?: string; timeout?: number } = {},
): Promise<ControlApi[E]['response']> {
  // None registered is a UserError that says how to start one.
  const address = await runtimeAddress(session.plugins.registry, options.runtime);
  const token = controlToken(address, () => readCredential(microFnHome(session.env)));
  try {
    return await callControl(session.client, endpoint, request, { timeout: options.timeout, address, token });
  } catch (err) {
    if (isMicroError(err) && err.unreachable)
      throw new UserError(`${err.detail}: the micro-fn serve registered there is not running. ${START_SERVE}`);
    throw err;
  }
}

/** How to start the runtime, for errors that found none. */
export const START_SERVE = 'Start one in another terminal: micro-fn serve';

/**
 * What to add to a call's error when the cause is that no `micro-fn serve` is running: `service` is not found and
 * no serve is registered, or a node could not be reached at the address of a registered serve (one that was killed:
 * its entry outlives it until its TTL). Nothing otherwise.
 */
export async function noServeHint(session: Session, err: MicroError, service: string): Promise<string | undefined> {
  // A 404 from a service that is registered (a standalone function's unknown endpoint) is not about serve.
  if (err.code === 404 && (await session.plugins.registry.getService(service).catch(() => [])).length > 0)
    return undefined;
  const runtimes = await session.plugins.registry
    .getService(RUNTIME_SERVICE)
    .then((versions) => versions.flatMap((v) => v.nodes.map((n) => n.address)))
    .catch(() => [] as string[]);
  if (err.code === 404 && runtimes.length === 0)
    return `no micro-fn serve is running for this registry (MICRO_FN_HOME, MICRO_REGISTRY), so nothing is deployed. ${START_SERVE}; then micro-fn deploy <entry>`;
  if (err.unreachable && runtimes.some((address) => err.detail.includes(address)))
    return `the micro-fn serve registered there is not running (its registry entry outlives it for up to a minute). ${START_SERVE}`;
  return undefined;
}

/**
 * What a call from the CLI sends as `Authorization` when the user gave no token (MICRO_AUTH_TOKEN, `--metadata
 * authorization=…`) and the service is served by a `serve --auth` on this machine (its nodes say `auth: jwt`): a token
 * the CLI signs with the credential's key, for the scopes the rules ask of this endpoint, valid for `ms`. The user who
 * holds the key could sign any token; this one only spares them doing it by hand.
 */
export async function gatewayAuthorization(
  session: Session,
  service: string,
  endpoint: string,
  ms: number,
): Promise<Record<string, string> | undefined> {
  const nodes = (await session.plugins.registry.getService(service)).flatMap((s) => s.nodes);
  if (!nodes.some((n) => n.metadata.auth === 'jwt' && isLoopback(n.address))) return undefined;
  const home = microFnHome(session.env);
  const credential = readCredential(home);
  if (!credential) return undefined;
  const [{ signToken, signingKey }, { readRules, ruleFor }] = await Promise.all([
    import('../serve/auth/jwt.js'),
    import('../serve/auth/rules.js'),
  ]);
  const rule = ruleFor(readRules(home), service, endpoint);
  const token = await signToken(signingKey(credential.jwtKey), {
    subject: `cli:${userInfo().username}`,
    scopes: rule.scopes ?? [],
    ttl: Math.ceil(ms / 1000) + 5,
  });
  return { authorization: `Bearer ${token}` };
}
