/**
 * `micro-fn serve`: the local runtime. One HTTP gateway (mucp over HTTP) in front of every deployed
 * function's pool of single-use processes, the broker every local process publishes to, event triggers
 * (one process per message, ack after success, redelivery, dead letters), and the control service
 * `micro-fn` (deploy, remove, list, publish, dead letters) that the CLI finds through the registry.
 * Beside them, the parts serve/extensions.ts lists (the local Lambda API and its event bridge), through one hook
 * (serve/extension.ts).
 */
import {
  deadLetterHeaders,
  deadLetterTopic,
  type Broker,
  type BrokerMessage,
  type DeliveryFailure,
  type Subscription,
} from '../runtime/core/broker.js';
import { createService } from '../runtime/core/service.js';
import { MicroError, errors, isMicroError } from '../runtime/core/errors.js';
import { Metadata } from '../runtime/core/metadata.js';
import type { Registry, ServiceRecord } from '../runtime/core/registry.js';
import {
  errorReply,
  type Caller,
  type Listener,
  type ServerRequest,
  type ServerResponse,
} from '../runtime/core/transport.js';
import type { PipeReader } from '../adapters/local/pipe-stream.js';
import { REQUEST_IN_STREAM, STREAM_METADATA, streamsRequest, type StreamKind } from '../runtime/core/stream.js';
import { createHttpListener } from '../runtime/plugins/http/listener.js';
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DeadLetters, type DeadLetterBox } from './dead-letters.js';
import { EntryWatcher } from './watch.js';
import { RemoteSubscriptions } from './remote-broker.js';
import { LogSink, type LogRotation } from './logs.js';
import { FunctionPool, type Outcome } from './pool.js';
import { PoolBudget, defaultPoolMemory } from './pool-budget.js';
import type { Extension } from './extension.js';
import { extensions } from './extensions.js';
import { runtimeDefinition, RUNTIME_SERVICE, type DeployRequest, type FunctionInfo } from './control.js';
import { Guard } from './auth/guard.js';
import {
  AUTH_TOKEN_ENV,
  FUNCTION_AWS_KEY_ID,
  FUNCTION_AWS_SECRET,
  type Credential,
} from '../runtime/core/credential.js';
import { ensureCredential } from '../runtime/plugins/local/credential.js';
import { isBuildFolder } from './validate.js';
import { stateFolder } from './state.js';
import { DeploymentRecords, removeLeftEntries } from './deployments.js';
import { LoadOutput } from './load-output.js';
import { nameProblem, type NameKind } from '../runtime/plugins/local/limits.js';
import { SPANS_ENV, type IpcReady } from '../adapters/local/ipc.js';
// Confinement of function processes (serve/launcher.ts).
import { Launcher } from './launcher.js';
import { functionUser } from './function-user.js';
import { ensureHome } from '../runtime/plugins/local/home.js';
import { refusedEnvProblem } from '../runtime/plugins/local/refused-env.js';
// What serve shows of invocations: one event per invocation, read by the request log, the stats and the feed.
import { Invocations } from './observe/event.js';
import { StatsCollector, hasFigures } from './observe/stats.js';
import type { RuntimeStats } from '../runtime/plugins/local/protocol.js';
import { otelEnv } from '../runtime/plugins/otel/settings.js';
import { SpanSink } from './observe/span-sink.js';
import { StoreHost } from './store-control.js';
import { STORE_TOKEN_ENV } from '../runtime/plugins/local/protocol.js';

export interface RuntimeOptions {
  home: string;
  registry: Registry;
  broker: Broker;
  /**
   * The dead letters of a broker that keeps them itself (serve's durable broker): `micro-fn dlq` reads them there.
   * Without it, serve subscribes to `dlq.<topic>` and keeps them in MICRO_FN_HOME/dlq (a NATS broker, a MemoryBroker).
   */
  deadLetters?: DeadLetterBox;
  /** `host:port` of the gateway. */
  address: string;
  /** Environment of serve: `MICRO_*` variables are passed on to function processes. */
  env: Record<string, string | undefined>;
  /** Warm processes per function at least; more while calls come fast, within `poolMemory`. */
  pool: number;
  /**
   * MiB that warm processes beyond the `pool` floors may take, serve-wide, each counted at its memory limit; 0: pools
   * keep exactly `pool`. Default a quarter of the machine's memory (serve/pool-budget.ts).
   */
  poolMemory?: number;
  concurrency: number;
  queue: number;
  /** Milliseconds per invocation. */
  timeout: number;
  /** MiB of resident memory per function process. */
  memory: number;
  /** Seconds; registrations are refreshed at half of it. */
  ttl: number;
  /** Echo function output on stdout (default true); `json`: as one JSON object per line (`serve --json`). */
  echo?: boolean | 'json';
  /**
   * Make an event of every invocation (default true): the request log, `Runtime.Stats` and the feed read them. Off
   * only to measure what they cost (bench/observe.ts).
   */
  observe?: boolean;
  /** When function log files rotate and how many are kept (default 10 MiB, 3: serve/logs.ts LOG_ROTATION). */
  logRotation?: LogRotation;
  /** Rebuild and redeploy a function when a file in its entry's folder changes. */
  watch?: boolean;
  /** Milliseconds a remote subscriber may hold a message without news before it is delivered again. */
  ackWait?: number;
  /** `serve --auth`: calls through the gateway (and Broker.Publish) need a token the rules accept. */
  auth?: boolean;
  /** Milliseconds a deployed bundle has to say it is ready before its deploy fails (504) and its process is killed. Default 30 000. */
  readyTimeout?: number;
  /** Connections the gateway keeps open at once (the HTTP listener's `maxConnections`). Default 1000. */
  maxConnections?: number;
  /**
   * `serve --user`: the user function processes run as when serve runs as root (default `nobody`; `root` keeps
   * them root). Refused when serve is not root. See serve/function-user.ts.
   */
  user?: string;
}

/** How long a new bundle may take to load and say it is ready, unless serve is told otherwise. */
export const DEFAULT_READY_TIMEOUT = 30_000;

interface Deployed {
  request: DeployRequest;
  info: FunctionInfo;
  pool: FunctionPool;
  subscriptions: Subscription[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class LocalRuntime {
  readonly options: RuntimeOptions;
  readonly #functions = new Map<string, Deployed>();
  /** The memory every pool grows into (serve/pool-budget.ts). */
  readonly #budget: PoolBudget;
  readonly #logs: LogSink;
  readonly #deadLetters: DeadLetterBox;
  readonly #dlqTopics = new Map<string, Promise<Subscription>>();
  /** The key-value store of `Store.*` (serve/store-control.ts); before #control, whose handlers it gives. */
  readonly store: StoreHost;
  readonly #control: ReturnType<typeof createService>;
  #listener: Listener | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #nodeId = `serve-${process.pid}-${Date.now().toString(36)}`;
  #watcher: EntryWatcher | undefined;
  /** Subscriptions of other processes to the broker hosted here. */
  readonly remote: RemoteSubscriptions;
  /** The parts hosted beside local functions (serve/extensions.ts). */
  #extensions: Extension[] = [];
  /** The credential of MICRO_FN_HOME, and what checks it: every request passes here first (#handle). */
  #credential: Credential | undefined;
  #guard: Guard | undefined;
  /** Under --auth, the token of the Lambda functions serve runs (they share one environment). */
  #lambdaToken: string | undefined;
  /** Under --auth, the id of each pool's function token, revoked when the pool retires. */
  readonly #tokenIds = new WeakMap<FunctionPool, string>();
  /** Starts every function process (local and Lambda), confined; made by start(). */
  #launcher: Launcher | undefined;
  /** This serve's state folder (serve/state.ts), for the next serve at its address; none on port 0. */
  readonly #state: string | undefined;
  /** What is deployed here, recorded there (serve/deployments.ts). */
  readonly #records: DeploymentRecords;
  /** This serve's identity across restarts at its address (its state folder's); set by start(). */
  #id = '';
  /** Every invocation as it ends (serve/observe/): subscribe with `invocations.on`. */
  readonly invocations = new Invocations();
  readonly #stats = new StatsCollector();
  readonly #startedAt = Date.now();
  /** Where the spans of serve's functions go, when serve's OTEL_* variables name a collector. */
  readonly #spans: SpanSink | undefined;
  /** serve's dashboard (serve/dashboard/), when it hosts one: `Dashboard.Login` asks it for a login URL. */
  dashboard: { login(): { url: string; expires: string } } | undefined;

  constructor(options: RuntimeOptions) {
    this.options = options;
    this.#budget = new PoolBudget(options.poolMemory ?? defaultPoolMemory());
    this.#spans = SpanSink.of({ env: options.env, say: serveSays });
    this.#state = stateFolder(options.home, options.address);
    this.#records = new DeploymentRecords(this.#state, options.home, serveSays);
    this.#logs = new LogSink(options.home, options.echo ?? true, undefined, options.logRotation);
    this.#deadLetters = options.deadLetters ?? new DeadLetters(options.home);
    this.remote = new RemoteSubscriptions(options.broker, { ackWait: options.ackWait });
    this.store = new StoreHost(options.home);
    this.#control = createService(runtimeDefinition(this), { logger: quietLogger });
    if (options.observe !== false) this.invocations.on((event) => this.#stats.record(event));
  }

  /** What `Runtime.Stats` returns: every function's figures with its pool's state, and the hosted broker's. */
  stats(): RuntimeStats {
    const now = Date.now();
    const deployed = [...this.#functions.values()].map((d) => ({ name: d.info.name, pool: d.pool.stats }));
    const broker = this.options.broker;
    return {
      at: new Date(now).toISOString(),
      uptime: Math.round((now - this.#startedAt) / 1000),
      functions: this.#stats.snapshot(deployed, now),
      ...(hasFigures(broker) ? { broker: broker.stats() } : {}),
    };
  }

  get address(): string {
    return this.#listener?.address ?? '';
  }

  async start(): Promise<void> {
    const o = this.options;
    await ensureHome(o.home);
    const launcher = (this.#launcher = new Launcher({ user: functionUser(o.user), home: o.home }));
    await launcher.start();
    const credential = (this.#credential = ensureCredential(o.home));
    const say = (line: string) => process.stderr.write(`[micro-fn serve] ${line}\n`);
    const guard = (this.#guard = new Guard({ credential, home: o.home, tokens: o.auth === true, say }));
    if (guard.tokens) this.#lambdaToken = await guard.functionToken('lambda', 'lambda');
    this.#extensions = extensions.map((make) =>
      make({
        home: o.home,
        nodeId: this.#nodeId,
        registry: o.registry,
        env: o.env,
        credential,
        launcher,
        functionEnv: () => this.#functionEnv(),
        concurrency: o.concurrency,
        state: this.#state,
        ttl: o.ttl,
        address: () => this.address,
        id: () => this.#id,
        log: (name, invocation, line) => this.#logs.write(name, invocation, 'stdout', line),
        say: (line) => process.stderr.write(`[micro-fn serve] ${line}\n`),
        invocation: o.observe === false ? undefined : (event) => this.invocations.emit(event),
        trigger: (name, topic, run) => this.#trigger(name, topic, run),
      }),
    );
    this.#listener = await createHttpListener((request, reply) => this.#handle(request).then(reply), {
      address: o.address,
      maxConnections: o.maxConnections,
      mounts: Object.assign({}, ...this.#extensions.map((e) => e.mounts ?? {})),
    });
    // This serve has bound the address: the entries the one before it left are its to replace; then its functions.
    this.#id = await this.#records.takeOver(this.#nodeId, async (previous) => {
      const left = await removeLeftEntries(o.registry, this.address, previous);
      if (left.length > 0)
        serveSays(`replaced the registry entries a serve at ${this.address} left: ${left.join(', ')}`);
    });
    await this.#records.restore((request) => this.#deploy(request));
    await this.#register();
    this.#timer = setInterval(() => void this.#register().catch(() => {}), (o.ttl * 1000) / 2);
    for (const extension of this.#extensions) await extension.start?.();
  }

  /** What every function serve runs starts from: serve's own MICRO_* settings, and its MICRO_FN_HOME. */
  #functionEnv(): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.options.env)) if (k.startsWith('MICRO_') && v !== undefined) env[k] = v;
    Object.assign(env, otelEnv(this.options.env)); // where its spans go, as OpenTelemetry's variables say
    if (this.#spans) env[SPANS_ENV] = this.#spans.key; // ...sent to serve, which exports them
    // A function of another user sees only the registry of it (serve/launcher.ts).
    env.MICRO_FN_HOME = this.#launcher?.functionHome(this.options.home) ?? this.options.home;
    // The local Lambda API's invoke-only pair (never the administrator's, never the control token).
    if (this.#credential) {
      env[FUNCTION_AWS_KEY_ID] = this.#credential.awsInvoke.accessKeyId;
      env[FUNCTION_AWS_SECRET] = this.#credential.awsInvoke.secretAccessKey;
    }
    if (this.#lambdaToken) env[AUTH_TOKEN_ENV] = this.#lambdaToken;
    env[STORE_TOKEN_ENV] = this.store.token; // opens Store.* and nothing else
    return env;
  }

  /**
   * Under --auth, puts a function's own token in `env` (unless the function declares one), so it can call and
   * publish when its caller gave no token. Its name is known only once its first process is ready: until then the
   * token says `function`; then processes started later get one with the name, under the same id. Returns the id.
   */
  async #giveToken(
    env: Record<string, string>,
    declared: Record<string, string> | undefined,
    id?: string,
    name?: string,
    pool?: FunctionPool,
  ): Promise<string | undefined> {
    const guard = this.#guard!;
    if (!guard.tokens || declared?.[AUTH_TOKEN_ENV] !== undefined) return undefined;
    id ??= guard.newFunctionId();
    env[AUTH_TOKEN_ENV] = await guard.functionToken(id, name);
    if (pool) this.#tokenIds.set(pool, id);
    return id;
  }

  async #handle(request: ServerRequest): Promise<ServerResponse> {
    if (request.probe)
      return {
        status: 200,
        contentType: 'application/json',
        body: encoder.encode('{"status":"ok"}'),
        metadata: new Metadata(),
      };
    // The one check before dispatch: the control token for the control service (Broker.Publish excepted: it only
    // triggers functions, so it is open as a call is), and under --auth a token the rules accept for every call.
    const guard = this.#guard!;
    let denied =
      request.service === RUNTIME_SERVICE && request.endpoint !== 'Broker.Publish'
        ? this.store.admits(request.endpoint, request.metadata)
          ? undefined
          : guard.control(request.metadata)
        : guard.call(request.service, request.endpoint, request.metadata);
    if (denied instanceof Promise) denied = await denied;
    if (denied) return errorReply(denied);
    if (request.service === RUNTIME_SERVICE) return this.#control.dispatcher.handle(request);
    const fn = this.#functions.get(request.service);
    if (!fn) return errorReply(errors.notFound('micro-fn', `service ${request.service || '(none)'} not found`));
    const unstreamed = request.stream ? takesNoStream(fn.info, request) : undefined;
    if (unstreamed) return errorReply(unstreamed);
    const outcome = await fn.pool.run(
      {
        type: 'invoke',
        id: request.id,
        endpoint: request.endpoint,
        contentType: request.contentType,
        body: decoder.decode(request.body),
        metadata: request.metadata.toJSON(),
        ...(request.stream ? { stream: true } : {}),
      },
      request.caller, // a queued call whose caller goes is dropped before it starts
      request.stream, // a client or bidi stream goes down the pipe as the function pulls it
    );
    if (outcome.kind !== 'reply')
      return errorReply(errors.internal(fn.info.name, 'unexpected answer from the function process'));
    return {
      status: outcome.status,
      contentType: outcome.contentType,
      body: encoder.encode(outcome.body),
      metadata: new Metadata(outcome.metadata),
      error: outcome.error,
      ...(outcome.stream ? { stream: cancelledWhenGone(outcome.stream, request.caller) } : {}),
    };
  }

  /**
   * Starts the function in `bundle` (a warm pool, its triggers), registers it, and retires its previous version.
   * Rejects with a MicroError whose detail says why: 400 for a bundle that fails to load or a function whose
   * names serve does not take, 504 for one not ready within `readyTimeout` (its process killed).
   */
  async deploy(request: DeployRequest): Promise<FunctionInfo> {
    try {
      return await this.#deploy(request);
    } catch (err) {
      await this.#discard(request.bundle);
      if (isMicroError(err)) throw err;
      throw errors.internal(
        RUNTIME_SERVICE,
        `the deploy of ${request.bundle} failed: ${(err as Error)?.message ?? err}`,
      );
    }
  }

  async #deploy(request: DeployRequest): Promise<FunctionInfo> {
    const o = this.options;
    const refused = refusedEnvProblem(request.env);
    if (refused) throw errors.badRequest(RUNTIME_SERVICE, refused);
    const base = this.#functionEnv();
    const timeout = request.timeout ?? o.timeout;
    // The function knows its own timeout: at it, its handler's signal fires and the caller gets the function's 408;
    // the pool's kill is the backstop, a grace later, for a handler that ignores its signal.
    const env: Record<string, string> = {
      ...base,
      ...request.env,
      MICRO_FN_HOME: base.MICRO_FN_HOME!,
      MICRO_FN_TIMEOUT: String(timeout),
    };
    const tokenId = await this.#giveToken(env, request.env);
    const size = request.pool ?? o.pool;
    let name = '(deploying)';
    // What the first process writes on stderr while it loads: a bundle that throws says why there.
    let loading: LoadOutput | undefined = new LoadOutput();
    const pool = new FunctionPool({
      name,
      launcher: this.#launcher!,
      bundle: request.bundle,
      env,
      memory: request.memory ?? o.memory,
      size,
      budget: this.#budget,
      concurrency: request.concurrency ?? o.concurrency,
      queue: request.queue ?? o.queue,
      timeout,
      log: (line, stream, invocation) => {
        if (loading && stream === 'stderr' && invocation === 'init') loading.push(line);
        this.#logs.write(name, invocation, stream, line);
      },
      onInvocation: o.observe === false ? undefined : (event) => this.invocations.emit(event),
      spans: this.#spans && ((message) => this.#spans!.accept(message)),
      store: (endpoint, request) => this.store.run(endpoint, request),
    });
    const ready = await this.#ready(pool, request.bundle, loading).finally(() => (loading = undefined));
    const invalid = nameProblem('function', ready.name) ?? firstProblem('topic', ready.topics);
    if (invalid) {
      await pool.close();
      throw errors.badRequest(RUNTIME_SERVICE, `the function in ${request.bundle} cannot be deployed: ${invalid}`);
    }
    name = ready.name;
    pool.options.name = name; // known only once the first process has described the function
    if (tokenId) await this.#giveToken(pool.options.env, request.env, tokenId, name, pool);
    const info: FunctionInfo = {
      name,
      version: ready.version,
      endpoints: ready.endpoints,
      ...streamsOf(ready),
      topics: ready.topics,
      bundle: request.bundle,
      entry: request.entry,
      pool: size,
      address: this.address,
    };
    const previous = this.#functions.get(name);
    const deployed: Deployed = { request, info, pool, subscriptions: [] };
    this.#functions.set(name, deployed);
    deployed.subscriptions = await Promise.all(
      ready.topics.map((topic) =>
        this.#trigger(name, topic, (message, attempt) => this.#runMessage(deployed, message, attempt)),
      ),
    );
    await this.#register();
    // Recorded before the previous version (and its bundle) goes: a crash in between restores one of the two.
    await this.#records.keep(name, request);
    if (previous) await this.#retire(previous, ready.version !== previous.info.version);
    if (o.watch && request.entry) this.#watchEntry(name, request.entry);
    return info;
  }

  /** The build folder of a bundle whose deploy failed goes (serve's bundle folder only), unless a deployed function runs it. */
  async #discard(bundle: string): Promise<void> {
    if ([...this.#functions.values()].some((d) => d.info.bundle === bundle)) return;
    const dir = dirname(bundle);
    if (await isBuildFolder(this.options.home, dir)) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }

  /** The first process's description; a load failure (400) or no ready within the bound (504, process killed). */
  async #ready(pool: FunctionPool, bundle: string, output: LoadOutput): Promise<IpcReady> {
    const limit = this.options.readyTimeout ?? DEFAULT_READY_TIMEOUT;
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), limit);
    try {
      return await pool.describe(timer.signal);
    } catch (err) {
      if (timer.signal.aborted)
        throw new MicroError(
          RUNTIME_SERVICE,
          504,
          `${bundle} did not say it was ready within ${limit} ms (serve --ready-timeout); its process was stopped. Does its module wait for something as it loads?`,
          { retryable: false },
        );
      if (isMicroError(err)) throw err; // a reason already given: over its memory limit as it loaded (worker.ts)
      throw errors.badRequest(RUNTIME_SERVICE, `${bundle} failed to load: ${output.reason((err as Error).message)}`);
    } finally {
      clearTimeout(timeout);
    }
  }

  /**
   * Triggers function `name` from `topic` (queue group: the name): `run` handles one message; ack after
   * success (true), nak (redelivered with backoff, then dead-lettered) after a failure, with its error if given.
   */
  async #trigger(
    name: string,
    topic: string,
    run: (message: BrokerMessage, attempt: number) => Promise<boolean | DeliveryFailure>,
  ): Promise<Subscription> {
    const subscription = await this.options.broker.subscribe(
      topic,
      async (delivery) => {
        const result = await run(delivery.message, delivery.attempt);
        if (result === true) await delivery.ack();
        else await delivery.nak(undefined, result || undefined);
      },
      { queue: name, ack: 'manual' },
    );
    await this.#watchDeadLetters(topic);
    return subscription;
  }

  /** One process per message; a crash or a timeout fails it too (the failure says which). */
  async #runMessage(deployed: Deployed, message: BrokerMessage, attempt: number): Promise<boolean | DeliveryFailure> {
    const { id, topic, headers, body } = message;
    const outcome: Outcome = await deployed.pool.run({
      type: 'message',
      id,
      topic,
      headers,
      body: decoder.decode(body),
      attempt,
    });
    if (outcome.kind === 'settled' && outcome.ok) return true;
    return outcome.error ? { code: outcome.error.code, detail: outcome.error.detail } : false;
  }

  /** Keeps the dead letters of `topic` for `micro-fn dlq`; once per topic, however many functions subscribe to it. */
  async #watchDeadLetters(topic: string): Promise<void> {
    const letters = this.#deadLetters;
    if (!(letters instanceof DeadLetters)) return; // the broker keeps them itself
    if (!this.#dlqTopics.has(topic)) {
      const subscribing = this.options.broker.subscribe(deadLetterTopic(topic), async (delivery) => {
        await letters.add(delivery.message.headers[deadLetterHeaders.topic] ?? topic, delivery.message);
      });
      this.#dlqTopics.set(topic, subscribing);
      subscribing.catch(() => this.#dlqTopics.delete(topic));
    }
    await this.#dlqTopics.get(topic);
  }

  #watchEntry(name: string, entry: string): void {
    this.#watcher ??= new EntryWatcher(this.options.home);
    this.#watcher.watch(
      entry,
      async ({ bundle, ms }) => {
        const current = this.#functions.get(name);
        if (!current || current.request.entry !== entry) return this.#watcher?.unwatch(entry);
        await this.deploy({ ...current.request, bundle });
        process.stderr.write(`rebuilt and redeployed ${name} (${ms} ms build)\n`);
      },
      (err) => process.stderr.write(`rebuilding ${name} failed: ${err.message}\n`),
    );
  }

  async #retire(deployed: Deployed, deregister: boolean, keepBundle = false): Promise<void> {
    await Promise.all(deployed.subscriptions.map((s) => s.unsubscribe()));
    if (deregister) await this.options.registry.deregister(this.#record(deployed.info)).catch(() => {});
    await deployed.pool.close();
    const tokenId = this.#tokenIds.get(deployed.pool);
    if (tokenId) this.#guard?.revoke(tokenId);
    if (keepBundle) return; // serve stops; the next one at this address runs it again
    // Bundles that deploy put under MICRO_FN_HOME/functions go with their version; nothing else is ever removed.
    const dir = dirname(deployed.info.bundle);
    if (await isBuildFolder(this.options.home, dir)) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }

  async remove(name: string): Promise<boolean> {
    const deployed = this.#functions.get(name);
    if (!deployed) {
      // A recorded function that did not start again: its record and bundle go.
      const bundle = await this.#records.forgetUnrestored(name);
      if (bundle) await this.#discard(bundle);
      return bundle !== undefined;
    }
    if (deployed.request.entry) this.#watcher?.unwatch(deployed.request.entry);
    this.#functions.delete(name);
    await this.#records.forget(name); // first: a crash during the rest does not bring it back
    await this.#retire(deployed, true);
    this.#stats.forget(name);
    return true;
  }

  list(): (FunctionInfo & { stats: FunctionPool['stats'] })[] {
    return [...this.#functions.values()].map((d) => ({ ...d.info, stats: d.pool.stats }));
  }

  async publish(topic: string, body: Uint8Array, headers: Record<string, string>): Promise<void> {
    await this.options.broker.publish(topic, { headers, body });
  }

  deadLetters(): DeadLetterBox {
    return this.#deadLetters;
  }

  #record(info: Pick<FunctionInfo, 'name' | 'version' | 'endpoints' | 'topics' | 'streams'>): ServiceRecord {
    return {
      name: info.name,
      version: info.version,
      metadata: { runtime: 'micro-fn serve' },
      endpoints: [
        ...info.endpoints.map((name) => {
          const kind = info.streams?.[name];
          const metadata: Record<string, string> = kind ? { [STREAM_METADATA]: kind } : {};
          return { name, metadata };
        }),
        ...info.topics.map((name) => ({ name, metadata: { subscriber: 'true' } })),
      ],
      nodes: [
        {
          id: `${info.name}-${this.#nodeId}`,
          address: this.address,
          // `auth: jwt`: calls need a token (serve --auth); the CLI then signs one with the credential.
          metadata: { gateway: 'true', ...(this.#guard?.tokens ? { auth: 'jwt' } : {}) },
        },
      ],
    };
  }

  async #register(): Promise<void> {
    const { registry, ttl } = this.options;
    const control = {
      name: RUNTIME_SERVICE,
      version: 'latest',
      endpoints: this.#control.router.endpoints().map((e) => e.name),
      topics: [],
    };
    await Promise.all(
      [control, ...[...this.#functions.values()].map((d) => d.info)].map((info) =>
        registry.register(this.#record(info), { ttl }),
      ),
    );
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#watcher?.close();
    await this.remote.close();
    const all = [...this.#functions.values()];
    this.#functions.clear();
    await Promise.all(all.map((d) => this.#retire(d, true, this.#records.kept)));
    await Promise.allSettled([...this.#dlqTopics.values()].map(async (s) => (await s).unsubscribe()));
    await this.options.registry
      .deregister(this.#record({ name: RUNTIME_SERVICE, version: 'latest', endpoints: [], topics: [] }))
      .catch(() => {});
    await this.#listener?.close();
    // After the gateway: a request to a mounted API in flight was still answered.
    await Promise.allSettled(this.#extensions.map((e) => e.stop()));
    await this.#launcher?.close();
    await this.store.close(); // after the gateway and the last processes: no Store.* call is in flight
    await this.#spans?.stop(); // after the last processes: their spans are in
    await this.#logs.close();
    this.#guard?.close();
  }
}

/** The endpoints a function's process says stream, as the registry lists them; a kind serve does not know is left out. */
function streamsOf(ready: IpcReady): Pick<FunctionInfo, 'streams'> {
  const streams: Record<string, StreamKind> = {};
  for (const [name, kind] of Object.entries(ready.streams ?? {}))
    if (ready.endpoints.includes(name) && STREAM_KINDS.has(kind)) streams[name] = kind;
  return Object.keys(streams).length > 0 ? { streams } : {};
}

const STREAM_KINDS = new Set<string>(['server', 'client', 'bidi']);

/**
 * A request stream to an endpoint that takes none, refused here rather than by the function: the pipe pulls a
 * request stream's first messages at once, and a WebSocket's first pull is its 101, so a refusal made in the
 * process would come after the handshake instead of as its HTTP answer.
 */
function takesNoStream(info: FunctionInfo, request: ServerRequest): MicroError | undefined {
  const { name } = info;
  if (!info.endpoints.includes(request.endpoint))
    return errors.notFound(name, `endpoint ${request.endpoint || '(none)'} not found on service ${name}`);
  const kind = info.streams?.[request.endpoint];
  if (streamsRequest(kind) || (kind === 'server' && request.metadata.has(REQUEST_IN_STREAM))) return undefined;
  return errors.badRequest(
    name,
    `${request.endpoint} takes no request stream: send its request as one application/json body`,
  );
}

/**
 * A reply stream that is cancelled when its caller goes, whether or not the listener stops reading it: the function
 * process is told at once (its handler's signal fires) rather than when a write fails.
 */
function cancelledWhenGone(stream: PipeReader, caller: Caller | undefined): PipeReader {
  const off = caller?.onGone(() => stream.cancel());
  if (off) void stream.end.then(off);
  return stream;
}

/** The problem with the first of `names` that is not a valid name of `kind`. */
function firstProblem(kind: NameKind, names: readonly string[]): string | undefined {
  for (const name of names) {
    const problem = nameProblem(kind, name);
    if (problem) return problem;
  }
  return undefined;
}

const serveSays = (line: string) => process.stderr.write(`[micro-fn serve] ${line}\n`);

const quietLogger = {
  debug() {},
  info() {},
  warn() {},
  error: (m: string, f?: Record<string, unknown>) => console.error(`[micro-fn serve] ${m}`, f ?? ''),
};
