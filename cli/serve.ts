import { availableParallelism } from 'node:os';
import { UserError } from '../runtime/core/errors.js';
import { readConfig } from '../runtime/core/config.js';
import { createMemoryBroker } from '../runtime/plugins/memory/broker.js';
import { choose, resolvePlugins } from '../runtime/plugins/resolve.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { LocalRuntime } from '../serve/runtime.js';
import { isLoopbackHost } from '../runtime/core/loopback.js';
import { parseListenAddress } from '../runtime/plugins/http/address.js';
import { LISTENER_LIMITS } from '../runtime/plugins/http/listener.js';
import { limitArgument, type DeployLimit } from '../runtime/plugins/local/limits.js';
import { duration, envWithFlags, pluginOptions, defineCommand } from './command.js';

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
      description: 'warm processes per function; 0 = a cold start per invocation (default 1)',
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
    ...pluginOptions,
  },
  examples: [
    'micro-fn serve',
    'micro-fn serve --watch',
    'micro-fn serve --pool 0 --timeout 5s',
    'micro-fn serve --auth --address 0.0.0.0:52980',
  ],
  async run({ values }) {
    const env = envWithFlags(values);
    const config = readConfig(env);
    const address = values.address ?? DEFAULT_GATEWAY;
    const auth = values.auth === true;
    refuseExposed(address, auth);
    const concurrency = limit('concurrency', count(values.concurrency, 'concurrency', availableParallelism() * 2, 1));
    const ackWait = duration(values['ack-wait'], 'ack-wait');
    // serve hosts the broker itself unless the configured one is shared with other hosts (NATS, JetStream).
    const shared = choose('broker', config.broker, 'node')?.shared === true;
    const plugins = await resolvePlugins(shared ? env : { ...env, MICRO_BROKER: undefined }, {
      broker: { ackWait, concurrency },
    });
    const registry = plugins.registry;
    const broker = shared ? plugins.broker : createMemoryBroker({ maxBytes: HOSTED_BROKER_BYTES });
    const runtime = new LocalRuntime({
      home: microFnHome(env),
      registry,
      broker,
      address,
      auth,
      env,
      pool: limit('pool', count(values.pool, 'pool', 1, 0)),
      concurrency,
      queue: limit('queue', count(values.queue, 'queue', 64, 0)),
      timeout: limit('timeout', duration(values.timeout, 'timeout') ?? 30_000),
      memory: limit('memory', count(values.memory, 'memory', 256, 16)),
      readyTimeout: positiveDuration(values['ready-timeout'], 'ready-timeout'),
      maxConnections: count(values['max-connections'], 'max-connections', LISTENER_LIMITS.maxConnections, 1),
      ttl: config.registerTtl,
      echo: values.quiet !== true,
      watch: values.watch === true,
      ackWait,
      user: values.user,
    });
    try {
      await runtime.start();
    } catch (err) {
      await Promise.allSettled([plugins.close(), broker.close?.()]);
      throw err;
    }
    process.stderr.write(
      `micro-fn serve listening on ${bound(address, runtime.address)}${auth ? ' (--auth: calls need a token)' : ''}\n`,
    );
    await new Promise<void>((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve));
    process.stderr.write('micro-fn serve stopping\n');
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

/** Bytes of messages the broker serve hosts may hold waiting for subscribers; past it, publish gets a retryable 503. */
const HOSTED_BROKER_BYTES = 64 * 1024 * 1024;

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
