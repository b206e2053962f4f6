import { writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { readConfig } from '../runtime/core/config.js';
import { choose, resolvePlugins } from '../runtime/plugins/resolve.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { LocalRuntime } from '../serve/runtime.js';
import { DEFAULT_RETENTION, openDurableBroker, type DurableBroker } from '../serve/broker/durable-broker.js';
import { isLoopbackHost } from '../runtime/core/loopback.js';
import { parseListenAddress } from '../runtime/plugins/http/address.js';
import { LISTENER_LIMITS } from '../runtime/plugins/http/listener.js';
import { limitArgument, type DeployLimit } from '../runtime/plugins/local/limits.js';
import { duration, envWithFlags, pluginOptions, defineCommand } from './command.js';
import { configOption, storeOption, syncOption } from './command.js';
import { LOG_ROTATION } from '../serve/logs.js';
import { invocationJson, invocationLine, jsonLines } from '../serve/observe/request-log.js';

export const DEFAULT_GATEWAY = '127.0.0.1:52980';

export const command = defineCommand({
  name: 'serve',
  summary: 'the local runtime: gateway, broker, and a fresh process per invocation',
  usage: '',
  description: [
    'Runs the local runtime until interrupted: an HTTP gateway (mucp over HTTP) on --address, the broker that',
    'local processes publish to, and a manager that runs every invocation of a deployed function in a fresh',
    'single-use process, keeping --pool of them warm. Deploy functions to it with `micro-fn deploy`.',
    '',
    'It prints a line per invocation (time, function, endpoint or topic#attempt, status, duration, cold or warm,',
    'invocation id) beside what functions print; with --json every line it prints is a JSON object (`type`:',
    'invocation, output or serve). `micro-fn ps` shows the figures per function, `micro-fn logs` the kept output.',
    '',
    'The broker keeps messages on disk (MICRO_FN_HOME/store): a publish returns once its message is durable, a',
    'crash or a stop of serve loses none (what was in progress comes again), a message no queue group takes yet is',
    'kept for --retention for the first one that subscribes, and past --broker-limit a publish gets a retryable 503.',
    '',
    'The gateway also serves the part of the AWS Lambda API that `micro-fn deploy --target lambda --endpoint`',
    'and Lambda invokes use (under /2015-03-31/), running deployed zips in Lambda execution environments (up to',
    '--concurrency per function version); and serve triggers Lambda functions with subscribers from its broker.',
    '',
    'Control (deploy, remove, dlq, subscriptions, the Lambda API) needs the credential serve makes on its first start in',
    'MICRO_FN_HOME/auth/credential.json (0600); the CLI of the same user uses it by itself (`micro-fn auth aws` for the',
    'AWS CLI). Calls are open on loopback; --auth makes them need a token, and is required off loopback.',
  ].join('\n'),
  options: {
    address: {
      type: 'string',
      short: 'a',
      value: 'HOST:PORT',
      description: `gateway address (default ${DEFAULT_GATEWAY})`,
    },
    pool: {
      type: 'string',
      value: 'N',
      description:
        'warm processes per function at least; more while calls come faster than processes start (see --pool-memory); 0 = a cold start per invocation (default 1)',
    },
    'pool-memory': {
      type: 'string',
      value: 'SIZE',
      description:
        "memory warm processes beyond --pool may take, all functions together, each counted at its --memory limit; 0 = exactly --pool (default a quarter of the machine's, or MICRO_FN_POOL_MEMORY)",
    },
    concurrency: {
      type: 'string',
      value: 'N',
      description: `invocations running at once per function (default ${availableParallelism() * 2})`,
    },
    queue: { type: 'string', value: 'N', description: 'invocations waiting per function before 429 (default 64)' },
    timeout: {
      type: 'string',
      value: 'DURATION',
      description: 'per invocation; the process is killed and the caller gets 408 (default 30s)',
    },
    memory: {
      type: 'string',
      value: 'MIB',
      description: 'resident memory limit per function process; past it the process is stopped (default 256)',
    },
    retention: {
      type: 'string',
      value: 'DURATION',
      description:
        "how long serve's broker keeps a message no queue group subscribes to yet, and a queue group without members keeps collecting (default 24h)",
    },
    'broker-limit': {
      type: 'string',
      value: 'SIZE',
      description:
        "bytes of messages serve's broker keeps on disk (waiting, in flight, dead letters); past it publish gets a retryable 503 (default 1GiB)",
    },
    'ack-wait': {
      type: 'string',
      value: 'DURATION',
      description:
        'how long a message may go without news (a `micro-fn run` subscriber, or a JetStream delivery whose host died) before it is delivered again (default 30s)',
    },
    'ready-timeout': {
      type: 'string',
      value: 'DURATION',
      description:
        'how long a deployed bundle may take to load and say it is ready; past it the deploy fails and its process is killed (default 30s)',
    },
    'max-connections': {
      type: 'string',
      value: 'N',
      description: `connections the gateway keeps open at once; past it the oldest idle one makes room (default ${LISTENER_LIMITS.maxConnections})`,
    },
    auth: {
      type: 'boolean',
      description:
        'calls through the gateway, and Broker.Publish, need a token (micro-fn auth token) the rules accept (micro-fn auth rule); needed to bind an address other machines can reach',
    },
    user: {
      type: 'string',
      value: 'NAME',
      description:
        'when serve runs as root, the user function processes run as (default nobody; a name or UID[:GID]); refused otherwise',
    },
    watch: {
      type: 'boolean',
      short: 'w',
      description: 'rebuild and redeploy a deployed function when its files change',
    },
    quiet: {
      type: 'boolean',
      short: 'q',
      description: 'do not echo function output (it is still kept for `micro-fn logs`)',
    },
    'no-request-log': {
      type: 'boolean',
      description: 'do not print a line per invocation (`micro-fn ps` still counts it)',
    },
    'log-size': {
      type: 'string',
      value: 'SIZE',
      description: `size at which a function's log file is rotated (default ${LOG_ROTATION.maxBytes / 1024 / 1024}MiB)`,
    },
    dashboard: {
      type: 'string',
      value: 'HOST:PORT',
      description:
        "the dashboard's address, loopback only (default the gateway's port + 1 on 127.0.0.1); `micro-fn dashboard` prints a login link",
    },
    'no-dashboard': { type: 'boolean', description: 'serve no dashboard' },
    'log-files': {
      type: 'string',
      value: 'N',
      description: `rotated log files kept per function (default ${LOG_ROTATION.keep})`,
    },
    ...pluginOptions,
    ...storeOption,
    ...syncOption,
    ...configOption,
  },
  examples: [
    'micro-fn serve',
    'micro-fn serve --watch',
    'micro-fn serve --json | jq \'select(.type == "invocation" and .ok == false)\'',
    'micro-fn serve --pool 0 --timeout 5s',
    'micro-fn serve --auth --address 0.0.0.0:52980',
  ],
  async run({ values }) {
    const json = values.json === true;
    if (json) jsonLines(process.stderr); // serve's own lines too, whichever part of it writes them
    const env = envWithFlags(values);
    const config = readConfig(env);
    const address = values.address ?? DEFAULT_GATEWAY;
    const auth = values.auth === true;
    refuseExposed(address, auth);
    const dashboard = values['no-dashboard'] === true ? undefined : dashboardAddress(values.dashboard, address);
    const concurrency = limit('concurrency', count(values.concurrency, 'concurrency', availableParallelism() * 2, 1));
    const ackWait = duration(values['ack-wait'], 'ack-wait');
    const retention = positiveDuration(values.retention, 'retention') ?? DEFAULT_RETENTION;
    const brokerLimit = size(values['broker-limit'], 'broker-limit') ?? HOSTED_BROKER_BYTES;
    // serve hosts the broker itself unless the configured one is shared with other hosts (NATS, JetStream).
    const shared = choose('broker', config.broker, 'node')?.shared === true;
    if (shared && (values.retention !== undefined || values['broker-limit'] !== undefined))
      throw new UserError(
        `--retention and --broker-limit are for the broker serve hosts; the ${config.broker} broker keeps messages on its server, under that server's limits: leave them out, or choose MICRO_BROKER=local`,
      );
    const plugins = await resolvePlugins(shared ? env : { ...env, MICRO_BROKER: undefined }, {
      broker: { ackWait, concurrency },
    });
    const registry = plugins.registry;
    const home = microFnHome(env);
    let durable: DurableBroker | undefined;
    try {
      if (!shared) durable = await hostedBroker(home, retention, brokerLimit, concurrency);
    } catch (err) {
      await plugins.close();
      throw err;
    }
    const broker = durable ?? plugins.broker;
    const runtime = new LocalRuntime({
      home,
      registry,
      broker,
      deadLetters: durable?.deadLetters,
      address,
      auth,
      env,
      pool: limit('pool', count(values.pool, 'pool', 1, 0)),
      poolMemory: poolMemory(values['pool-memory'] ?? env.MICRO_FN_POOL_MEMORY),
      concurrency,
      queue: limit('queue', count(values.queue, 'queue', 64, 0)),
      timeout: limit('timeout', duration(values.timeout, 'timeout') ?? 30_000),
      memory: limit('memory', count(values.memory, 'memory', 256, 16)),
      readyTimeout: positiveDuration(values['ready-timeout'], 'ready-timeout'),
      maxConnections: count(values['max-connections'], 'max-connections', LISTENER_LIMITS.maxConnections, 1),
      ttl: config.registerTtl,
      echo: values.quiet === true ? false : json ? 'json' : true,
      // MICRO_FN_OBSERVE=0 makes no invocation events at all: only to measure what they cost (bench/observe.ts).
      observe: env.MICRO_FN_OBSERVE !== '0',
      logRotation: {
        maxBytes: size(values['log-size'], 'log-size') ?? LOG_ROTATION.maxBytes,
        keep: count(values['log-files'], 'log-files', LOG_ROTATION.keep, 0),
      },
      watch: values.watch === true,
      ackWait,
      user: values.user,
    });
    if (values['no-request-log'] !== true) {
      const color = !json && process.stdout.isTTY === true && !process.env.NO_COLOR;
      runtime.invocations.on((event) =>
        process.stdout.write(`${json ? JSON.stringify(invocationJson(event)) : invocationLine(event, color)}\n`),
      );
    }
    try {
      await runtime.start();
    } catch (err) {
      await Promise.allSettled([plugins.close(), broker.close?.()]);
      throw err;
    }
    process.stderr.write(
      `micro-fn serve listening on ${bound(address, runtime.address)}${auth ? ' (--auth: calls need a token)' : ''}\n`,
    );
    const board = dashboard === undefined ? undefined : await startDashboard(runtime, dashboard, home, json);
    await new Promise<void>((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve));
    process.stderr.write('micro-fn serve stopping\n');
    await board?.close();
    await runtime.stop();
    await Promise.allSettled([plugins.close(), broker.close?.()]);
    return 0;
  },
});

/**
 * Without --auth, anything that reaches the gateway may call every function: serve binds loopback only then.
 * Wildcards (`:8080`, 0.0.0.0, ::), names other than localhost and other addresses need --auth.
 */
function refuseExposed(address: string, auth: boolean): void {
  const { host } = parseListenAddress(address);
  if (auth || isLoopbackHost(host)) return;
  throw new UserError(
    `--address ${address} can be reached from other machines, which could then call every function: add --auth (calls then need a token: micro-fn auth token), or bind 127.0.0.1`,
  );
}

/** The address bound, as asked (a wildcard stays one) with the port taken; and where it is registered if that differs. */
function bound(asked: string, registered: string): string {
  const { host } = parseListenAddress(asked);
  const port = new URL(registered).port;
  const shown = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return shown === registered ? shown : `${shown} (registered as ${registered})`;
}

/**
 * The dashboard's address: `--dashboard`, which must be loopback (its login is a cookie on that host), else the
 * gateway's port + 1 on the gateway's host when that is loopback, 127.0.0.1 otherwise (any free port for port 0).
 */
function dashboardAddress(given: string | undefined, gateway: string): string {
  if (given !== undefined) {
    const { host } = parseListenAddress(given);
    // An IP, not a name: the dashboard checks every request's Host against the address it is bound to.
    if (!isLoopbackHost(host) || host === 'localhost')
      throw new UserError(
        `--dashboard ${given}: the dashboard listens on a loopback IP address only, like 127.0.0.1:52981 or [::1]:52981 (reach it from elsewhere through an SSH tunnel)`,
      );
    return hostPort(host, parseListenAddress(given).port);
  }
  const { host, port } = parseListenAddress(gateway);
  return hostPort(isLoopbackHost(host) && host !== 'localhost' ? host : '127.0.0.1', port === 0 ? 0 : port + 1);
}

const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/**
 * Starts the dashboard (loaded only now: serve's start does not pay for it) and says where; an address that is taken
 * is said in one line and serve goes on without it.
 */
async function startDashboard(runtime: LocalRuntime, address: string, home: string, json: boolean) {
  const [{ Dashboard }, { ensureCredential }] = await Promise.all([
    import('../serve/dashboard/server.js'),
    import('../runtime/plugins/local/credential.js'),
  ]);
  try {
    const dashboard = await Dashboard.start(runtime, { address, control: ensureCredential(home).control, home });
    runtime.dashboard = dashboard;
    const message = `dashboard: ${dashboard.url} (micro-fn dashboard prints a login link)`;
    // With --json, a field of its own; written past jsonLines, which would wrap it as a message.
    if (json)
      writeSync(
        2,
        `${JSON.stringify({ type: 'serve', time: new Date().toISOString(), message, dashboard: dashboard.url })}\n`,
      );
    else process.stderr.write(`${message}\n`);
    return dashboard;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    process.stderr.write(
      `dashboard: cannot listen on ${address} (${code ?? (err as Error).message}); serve goes on without it (--dashboard HOST:PORT chooses another address)\n`,
    );
    return undefined;
  }
}

/** Bytes of messages the broker serve hosts keeps on disk at most; past it, publish gets a retryable 503. */
const HOSTED_BROKER_BYTES = 1024 * 1024 * 1024;

/**
 * The broker serve hosts: on disk under MICRO_FN_HOME/store. A subscription holds as many unsettled messages as a
 * function runs at once (`prefetch`): the rest wait on disk, and a stop waits only for those.
 */
async function hostedBroker(home: string, retention: number, maxBytes: number, prefetch: number) {
  let broker: DurableBroker;
  try {
    broker = await openDurableBroker({ home, retention, maxBytes, prefetch });
  } catch (err) {
    throw new UserError(
      `cannot open serve's broker store under ${home}/store: ${(err as Error).message}. Is MICRO_FN_HOME writable, with space left?`,
    );
  }
  if (basename(broker.path) !== 'broker')
    process.stderr.write(
      `another micro-fn serve holds ${dirname(broker.path)}/broker: this one keeps its messages in ${broker.path}\n`,
    );
  return broker;
}

/** `1048576`, `512KiB`, `64MiB`, `1GiB` (also KB, MB, GB: 1000s) as bytes, or undefined when not given. */
function size(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(value.trim());
  const bytes = match ? Math.floor(Number(match[1]) * UNITS[(match[2] ?? 'b').toLowerCase()]!) : NaN;
  if (!(bytes >= 1024))
    throw new UserError(`--${flag} takes a size of at least 1KiB, like 512MiB or 2GiB; got "${value}"`);
  return bytes;
}

/** `--pool-memory` (or MICRO_FN_POOL_MEMORY) in MiB: 0, or a size; undefined when not given. */
function poolMemory(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === '0') return 0;
  return Math.floor(size(value, 'pool-memory')! / 1048576);
}

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

const limit = (field: DeployLimit, value: number): number => limitArgument(field, value)!;

function positiveDuration(value: string | undefined, flag: string): number | undefined {
  const ms = duration(value, flag);
  if (ms !== undefined && ms <= 0) throw new UserError(`--${flag} takes a duration longer than 0, like 30s`);
  return ms;
}

function count(value: unknown, flag: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UserError(`--${flag} takes a whole number of at least ${min}; got "${value}"`);
  return n;
}
