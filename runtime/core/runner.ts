/**
 * The one invocation seam: "bind plugins → start → take one invocation → stop → close", written once. Every
 * adapter (a local process, a Lambda event, a Worker's or Deno's fetch, a standalone listener) hands its
 * invocation to a Runner and translates the result back to its platform; none of them repeats this lifecycle.
 */
import type { Broker, BrokerMessage } from './broker.js';
import { Client } from './client.js';
import type { Env } from './config.js';
import { AUTH_TOKEN_ENV } from './credential.js';
import { headers } from './metadata.js';
import { errors, toMicroError } from './errors.js';
import { createFunction, type FunctionOutcome, type MicroFunction } from './function.js';
import type { Registry } from './registry.js';
import type { StoreBackend } from './store.js';
import type { SyncBackend } from './sync.js';
import type { ConfigBackend } from './function-config.js';
import { Router, type ServiceDefinition } from './router.js';
import type { MessageOutcome } from './server.js';
import { errorReply, type Reply, type ServerRequest, type ServerResponse, type Transport } from './transport.js';
import { FLUSH_BOUND, nonRecordingTracer, type Tracer, type TracerFactory } from './trace.js';

/** What the plugins of one host come to: a registry, a broker, client transports, and how to close them. */
export interface PluginSet {
  registry?: Registry;
  broker?: Broker;
  transports: Transport[];
  /** The key-value store's plugin (`MICRO_STORE`), opened on the first call (`ctx.store`'s first operation). */
  store?: () => Promise<StoreBackend>;
  /** The sync plugin (`MICRO_SYNC`), opened on the first lock (`ctx.sync`). */
  sync?: () => Promise<SyncBackend>;
  /** The `kv` layer of `ctx.config` (`MICRO_CONFIG`), opened on the first read. */
  config?: () => Promise<ConfigBackend>;
  close(): Promise<void>;
}

export interface RunnerOptions {
  /** The function's configuration (`MICRO_*` and its own variables); handlers see it as `ctx.env`. */
  env: Env;
  /** Makes the plugins (adapters pass runtime/plugins' resolvePlugins). Called on the first call out, not before. */
  plugins: () => Promise<PluginSet>;
  /**
   * `invocation` (default): plugins opened for one invocation are closed when it ends (a Worker may not reuse one
   * request's I/O in another). `host`: opened once and kept for the invocations that follow (a Lambda execution
   * environment), until `close()`; a failed open is tried again by the next invocation.
   */
  scope?: 'invocation' | 'host';
  /** Where a failure outside the handler (a beforeStart hook, the configuration) is reported. Default console.error. */
  report?: (message: string, error: unknown) => void;
  /** Milliseconds an invocation may run (a caller's `Micro-Timeout` can only shorten it). Default `MICRO_FN_TIMEOUT`. */
  timeout?: number;
  /** Milliseconds a handler past its deadline is given to wind down before the function stops. Default 1000. */
  grace?: number;
  /**
   * Makes each invocation's tracer (runtime/plugins/resolve.ts `tracingOf`); absent, no span is recorded. An
   * invocation's spans are sent as it ends, after its reply.
   */
  tracing?: TracerFactory;
}

/** A started one-shot Function waiting for its invocation, with the plugins it may open. */
export interface Invocation {
  readonly fn: MicroFunction;
  /** The invocation's tracer: an adapter that knows better sets `coldStart` on it before the invocation. */
  readonly tracer: Tracer;
  /** Runs `request`; `reply` is awaited before the function stops (the reply is delivered before anything else). */
  invoke(request: ServerRequest, reply?: Reply): Promise<ServerResponse>;
  /** Runs the subscriber of one message. */
  deliver(message: BrokerMessage, attempt?: number): Promise<MessageOutcome>;
  /** Stops the function (a probe leaves it waiting) and closes what this invocation opened. Never rejects. */
  end(): Promise<FunctionOutcome>;
}

/** How a standalone function listens: its own listener, registry entry and subscriptions. */
export interface StandaloneOptions {
  /** The function's configuration; handlers see it as `ctx.env`. */
  env: Env;
  /** The host's plugins: the function registers, subscribes and calls out with them; closed when it ends. */
  plugins: PluginSet;
  /** Listens with this transport. */
  transport: Transport;
  /** `host:port` to listen on. */
  address?: string;
  /** Milliseconds to wait for the invocation before ending cleanly; 0: forever. */
  idleTimeout?: number;
  /** Called with the node address once listening and registered. */
  onListening?: (address: string) => void;
  /**
   * Aborting ends the function: waiting, at once (deregistered, closed); serving, once its handler has answered
   * or the grace after its signal has passed (its caller then gets a 503).
   */
  signal?: AbortSignal;
  /** Milliseconds the invocation may run (a caller's `Micro-Timeout` can only shorten it). Default `MICRO_FN_TIMEOUT`. */
  timeout?: number;
  /** Milliseconds a handler is given to wind down after its signal fired. Default 1000. */
  grace?: number;
  /** Makes the function's tracer; absent, no span is recorded. The spans are sent once the function has ended. */
  tracing?: TracerFactory;
}

const defaultReport = (message: string, error: unknown) => console.error(message, error);

/**
 * The function's own token (MICRO_AUTH_TOKEN: `serve --auth` gives one to each function it runs), sent on its calls
 * and publishes when the caller's, which the handler's client carries on, is absent: go-micro's service account.
 */
function ownToken(env: Env): Record<string, string> | undefined {
  const token = env[AUTH_TOKEN_ENV];
  return token ? { [headers.authorization]: `Bearer ${token}` } : undefined;
}

/**
 * Runs invocations of one definition, each in a fresh one-shot Function.
 * @example
 * import { Runner } from 'micro-fn';
 * import { resolvePlugins } from 'micro-fn/plugins';
 * import helloworld from './helloworld.js';
 *
 * const env = process.env;
 * const runner = new Runner(helloworld, { env, plugins: () => resolvePlugins(env) });
 * const reply = await runner.invoke({ id: '1', service: 'helloworld', endpoint: 'Greeter.Hello', contentType: 'application/json',
 *   body: new TextEncoder().encode('{"name":"Ada"}'), metadata: new Metadata() });
 */
export class Runner {
  readonly definition: ServiceDefinition;
  readonly #options: RunnerOptions;
  readonly #report: (message: string, error: unknown) => void;
  #topics: readonly string[] | undefined;
  /** Host scope: the plugins shared by every invocation. */
  #shared: Promise<PluginSet> | undefined;
  /** Invocations opened: the first of a host is its cold start. */
  #opened = 0;

  constructor(definition: ServiceDefinition, options: RunnerOptions) {
    this.definition = definition;
    this.#options = options;
    this.#report = options.report ?? defaultReport;
  }

  get name(): string {
    return this.definition.name;
  }

  /** The topics the definition subscribes to. */
  get topics(): readonly string[] {
    return (this.#topics ??= new Router(this.definition).topics);
  }

  /** A fresh Function, started and waiting. Its client opens the plugins on its first call out or publish. */
  async open(): Promise<Invocation> {
    const { env, scope, timeout, grace } = this.#options;
    let own: Promise<PluginSet> | undefined;
    const tracer = this.#options.tracing?.(this.name) ?? nonRecordingTracer();
    tracer.coldStart = this.#opened++ === 0;
    // None in a bundle whose function never calls out (build-constants.ts): its plugins are never loaded either.
    const client = globalThis.__MICRO_FN_NO_CLIENT__
      ? undefined
      : new Client({
          load: scope === 'host' ? () => this.#loadShared() : () => (own ??= this.#options.plugins()),
          metadata: ownToken(env),
          tracer,
        });
    const fn = createFunction(this.definition, { client, env, timeout, grace, tracer });
    const end = async (): Promise<FunctionOutcome> => {
      const outcome = await fn.stop();
      // After the reply (invoke awaits it before the function stops), and bounded: a collector that is down
      // never holds the host up for long, nor costs the caller its answer.
      await tracer.flush(FLUSH_BOUND);
      if (!globalThis.__MICRO_FN_NO_CLIENT__) await (await own?.catch(() => undefined))?.close().catch(() => {});
      return outcome;
    };
    try {
      await fn.start();
    } catch (err) {
      await end();
      throw err;
    }
    return {
      fn,
      tracer,
      invoke: (request, reply) => fn.invoke(request, reply),
      deliver: (message, attempt) => fn.deliver(message, attempt),
      end,
    };
  }

  /**
   * Runs one request in a fresh Function and ends it. Never throws: a failure outside the handler is reported and
   * answered as a 500 (through `reply` too, when given).
   */
  async invoke(request: ServerRequest, reply?: Reply): Promise<ServerResponse> {
    let invocation: Invocation | undefined;
    let replied = false;
    const sent: Reply | undefined = reply && ((response) => ((replied = true), reply(response)));
    try {
      invocation = await this.open();
      return await invocation.invoke(request, sent);
    } catch (err) {
      this.#report(`[${this.name}] the invocation failed`, err);
      // Its details go to the report, never to the caller.
      const response = errorReply(errors.internal(this.name, 'internal server error'));
      if (sent && !replied) await sent(response).catch(() => {});
      return response;
    } finally {
      await invocation?.end();
    }
  }

  /** Runs the subscriber of one message in a fresh Function and ends it. Never throws: a failure is `ok: false`. */
  async deliver(message: BrokerMessage, attempt = 1): Promise<MessageOutcome> {
    let invocation: Invocation | undefined;
    try {
      invocation = await this.open();
      return await invocation.deliver(message, attempt);
    } catch (err) {
      this.#report(`[${this.name}] message ${message.id} on ${message.topic} failed (attempt ${attempt})`, err);
      return { ok: false, error: toMicroError(err, this.name) };
    } finally {
      await invocation?.end();
    }
  }

  /** Closes the plugins kept for the host (scope `host`). */
  async close(): Promise<void> {
    if (globalThis.__MICRO_FN_NO_CLIENT__) return; // nothing opens plugins there (build-constants.ts)
    const shared = this.#shared;
    this.#shared = undefined;
    await (await shared?.catch(() => undefined))?.close();
  }

  /** Host scope: opened once; a failure (a server unreachable, say) is not kept, so the next invocation tries again. */
  #loadShared(): Promise<PluginSet> {
    if (globalThis.__MICRO_FN_NO_CLIENT__) return this.#options.plugins(); // never called there: no client
    return (this.#shared ??= this.#options.plugins().catch((err: unknown) => {
      this.#shared = undefined;
      throw err;
    }));
  }
}

/**
 * Runs `definition` standalone (go-micro's Function as it was): listens, registers, subscribes, takes one request
 * or message, deregisters, closes the plugins, and resolves with how it ended.
 */
export async function listenOnce(definition: ServiceDefinition, options: StandaloneOptions): Promise<FunctionOutcome> {
  const { plugins } = options;
  const metadata = ownToken(options.env);
  const tracer = options.tracing?.(definition.name) ?? nonRecordingTracer();
  tracer.coldStart = true;
  try {
    const fn = createFunction(definition, {
      tracer,
      env: options.env,
      // With a token of its own, the function's client sends it (otherwise the Service makes its client).
      ...(metadata
        ? {
            client: new Client({
              registry: plugins.registry,
              broker: plugins.broker,
              store: plugins.store,
              sync: plugins.sync,
              config: plugins.config,
              transports: plugins.transports,
              metadata,
              tracer,
            }),
          }
        : {}),
      registry: plugins.registry,
      broker: plugins.broker,
      store: plugins.store,
      sync: plugins.sync,
      config: plugins.config,
      transport: options.transport,
      transports: plugins.transports,
      address: options.address,
      idleTimeout: options.idleTimeout,
      timeout: options.timeout,
      grace: options.grace,
    });
    const onAbort = () => void fn.stop();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await fn.start();
      options.onListening?.(fn.service.address ?? '');
      if (options.signal?.aborted) onAbort();
      return await fn.done;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  } finally {
    await tracer.flush(FLUSH_BOUND);
    await plugins.close();
  }
}
