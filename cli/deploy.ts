import { join } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { buildLocal, entryName, resolveEntry } from '../adapters/local/build.js';
import { duration, envWithFlags, pluginOptions, type Command, type Parsed } from './command.js';
import { dim, write } from './output.js';
import { callRuntime, runtimeOption, withSession } from './plugins.js';

export const command: Command = {
  name: 'deploy',
  summary: 'build a function and deploy it: to the running micro-fn serve, AWS Lambda or Cloudflare Workers',
  usage: '<entry>',
  description: [
    'Builds <entry> and deploys it to the `micro-fn serve` found through the registry: the function is',
    'registered with the gateway as its address, its topics trigger it, and a redeploy swaps the version',
    'without failing invocations in flight. Its processes get only the --env it declares plus MICRO_*.',
    '',
    'With --target lambda: bundles it for AWS Lambda (nodejs22.x), creates the function or updates its code and',
    'configuration, publishes a version, points --alias at it, and registers it at lambda://REGION/NAME:ALIAS,',
    'where `micro-fn call` reaches it. Credentials and region come from the AWS chain (AWS_PROFILE, AWS_REGION,',
    '...); --endpoint (or AWS_ENDPOINT_URL_LAMBDA) deploys to another Lambda API, e.g. micro-fn serve\'s own',
    '(http://127.0.0.1:52980). Its --env is all the environment it gets: give it MICRO_REGISTRY, MICRO_BROKER',
    'and their addresses for calls and publishes from Lambda. A running micro-fn serve triggers it from its topics.',
    '',
    'With --target cloudflare: bundles it as a module worker, uploads it with the Workers script API',
    '(CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_TOKEN), serves it on workers.dev and registers that address (--url for',
    'your own domain). Its --env become the Worker\'s plain-text bindings; NATS must be a ws:// or wss:// address.',
    '--dry-run writes the bundle, the upload metadata and a wrangler.toml instead, for `npx wrangler deploy`.',
  ].join('\n'),
  options: {
    target: { type: 'string', value: 'TARGET', description: 'where to deploy: local (default), lambda or cloudflare' },
    env: { type: 'string', short: 'e', value: 'KEY=VALUE', multiple: true, description: 'environment of the function (KEY alone passes the current value)' },
    pool: { type: 'string', value: 'N', description: "warm processes (default: serve's --pool)" },
    timeout: { type: 'string', value: 'DURATION', description: "per invocation (default: serve's --timeout; lambda: 3s, up to 900s)" },
    memory: { type: 'string', value: 'MIB', description: "resident memory limit per process (default: serve's --memory; lambda: 128 to 10240)" },
    concurrency: { type: 'string', value: 'N', description: "invocations at once (default: serve's --concurrency)" },
    queue: { type: 'string', value: 'N', description: "invocations waiting before 429 (default: serve's --queue)" },
    role: { type: 'string', value: 'ARN', description: 'lambda: the execution role, needed to create the function' },
    region: { type: 'string', value: 'REGION', description: 'lambda: the AWS region (default: AWS_REGION or the profile\'s)' },
    alias: { type: 'string', value: 'NAME', description: 'lambda: the alias to point at the new version (default live)' },
    endpoint: { type: 'string', value: 'URL', description: 'lambda: another Lambda API (env AWS_ENDPOINT_URL_LAMBDA)' },
    'dry-run': { type: 'boolean', description: 'lambda: print the plan without calling AWS; cloudflare: write the files for wrangler' },
    name: { type: 'string', value: 'NAME', description: "cloudflare: the Worker's name (default: the service name, dots as dashes)" },
    url: { type: 'string', value: 'URL', description: "cloudflare: the address to register instead of NAME.SUBDOMAIN.workers.dev" },
    outdir: { type: 'string', short: 'o', value: 'DIR', description: 'cloudflare: where the bundle (and dry-run files) go (default under MICRO_FN_HOME/builds)' },
    'compatibility-date': { type: 'string', value: 'YYYY-MM-DD', description: "cloudflare: the Worker's compatibility date" },
    ...runtimeOption,
    ...pluginOptions,
  },
  examples: [
    'micro-fn deploy examples/helloworld --target local',
    'micro-fn deploy examples/events --env SLACK_URL',
    'micro-fn deploy examples/helloworld --target lambda --role arn:aws:iam::123456789012:role/micro-fn-lambda',
    'micro-fn deploy examples/helloworld --target lambda --endpoint http://127.0.0.1:52980',
    'micro-fn deploy examples/helloworld --target cloudflare --env MICRO_REGISTRY=nats --env MICRO_REGISTRY_ADDRESS=wss://nats.example.com',
    'micro-fn deploy examples/helloworld --target cloudflare --dry-run --outdir worker/',
  ],
  async run({ positionals, values }) {
    const [entry, extra] = positionals;
    if (!entry) throw new UserError('deploy needs an entry: micro-fn deploy <entry> --target local');
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}"`);
    const target = (values.target as string | undefined) ?? 'local';
    if (!['local', 'lambda', 'cloudflare'].includes(target)) throw new UserError(`--target ${target} is not available; targets: local, lambda, cloudflare`);
    const file = resolveEntry(entry);
    const env = Object.fromEntries(((values.env as string[] | undefined) ?? []).map(envPair));
    if (target === 'lambda') {
      for (const flag of CLOUDFLARE_ONLY) if (values[flag] !== undefined) throw new UserError(`--${flag} is for --target cloudflare`);
      return deployToLambda(file, env, values);
    }
    if (target === 'cloudflare') return deployToCloudflare(file, env, values);
    for (const flag of [...CLOUDFLARE_ONLY, 'dry-run']) if (values[flag] !== undefined) throw new UserError(`--${flag} is for --target lambda or cloudflare`);
    for (const flag of ['role', 'region', 'alias', 'endpoint']) if (values[flag] !== undefined) throw new UserError(`--${flag} is for --target lambda`);
    const pool = whole(values.pool, 'pool', 0);
    const memory = whole(values.memory, 'memory', 16);
    const concurrency = whole(values.concurrency, 'concurrency', 1);
    const queue = whole(values.queue, 'queue', 0);
    const timeout = duration(values.timeout as string | undefined, 'timeout');
    const json = values.json === true;

    return withSession(values, async (session) => {
      const outdir = join(microFnHome(session.env), 'functions', `${Date.now().toString(36)}-${process.pid}`);
      const built = await buildLocal(file, { outdir });
      if (!json) process.stderr.write(`built ${entry} ${dim(`(${kib(built.size)} in ${built.ms} ms)`)}\n`);
      const started = Date.now();
      const info = await callRuntime(session, 'Runtime.Deploy', { bundle: built.file, entry: file, env, pool, timeout, memory, concurrency, queue }, { runtime: values.runtime as string | undefined, timeout: 120_000 });
      if (json) await write(process.stdout, `${JSON.stringify(info)}\n`);
      else {
        const what = [...info.endpoints, ...info.topics.map((t) => `topic ${t}`)].join(', ');
        process.stderr.write(`deployed ${info.name} ${dim(`(${what}) at ${info.address} in ${Date.now() - started} ms`)}\n`);
      }
      return 0;
    });
  },
};

/** `--target lambda`: its code loads only here, and the AWS SDK only with it. */
async function deployToLambda(file: string, env: Record<string, string>, values: Parsed['values']): Promise<number> {
  for (const flag of ['pool', 'concurrency', 'queue', 'runtime']) if (values[flag] !== undefined) throw new UserError(`--${flag} is for --target local; Lambda scales by itself`);
  const { deployLambda } = await import('../adapters/lambda/deploy.js');
  const json = values.json === true;
  const timeout = duration(values.timeout as string | undefined, 'timeout');
  const hostEnv = envWithFlags(values);
  const started = Date.now();
  const result = await deployLambda({
    entry: file,
    // Kept (and replaced by the next deploy), so the zip of a dry run can be looked at or deployed by other means.
    outdir: join(microFnHome(hostEnv), 'builds', 'lambda', entryName(file)),
    env,
    role: values.role as string | undefined,
    region: values.region as string | undefined,
    alias: values.alias as string | undefined,
    endpoint: values.endpoint as string | undefined,
    memory: whole(values.memory, 'memory', 128),
    timeout: timeout === undefined ? undefined : Math.ceil(timeout / 1000),
    dryRun: values['dry-run'] === true,
    hostEnv,
    onProgress: json ? undefined : (line) => process.stderr.write(`${dim(line)}\n`),
  });
  if (json) await write(process.stdout, `${JSON.stringify(result)}\n`);
  else if (values['dry-run']) await write(process.stdout, `dry run, nothing deployed; would:\n${result.plan.map((l) => `  ${l}\n`).join('')}`);
  else {
    const what = [...result.endpoints, ...result.topics.map((t) => `topic ${t}`)].join(', ');
    process.stderr.write(`deployed ${result.name} ${dim(`(${what}) at ${result.address}, version ${result.version}, in ${Date.now() - started} ms`)}\n`);
  }
  return 0;
}

const CLOUDFLARE_ONLY = ['name', 'url', 'outdir', 'compatibility-date'];

/** `--target cloudflare`: build, upload through the Workers API (or write wrangler files), register. */
async function deployToCloudflare(file: string, env: Record<string, string>, values: Parsed['values']): Promise<number> {
  for (const flag of ['pool', 'concurrency', 'queue', 'runtime', 'role', 'region', 'alias', 'endpoint', 'memory', 'timeout']) {
    if (values[flag] !== undefined) throw new UserError(`--${flag} is not for --target cloudflare`);
  }
  const [{ deployCloudflare, workerName, workerRecord }, { loadFunction }] = await Promise.all([import('../adapters/cloudflare/deploy.js'), import('./load.js')]);
  const json = values.json === true;
  const hostEnv = envWithFlags(values);
  const { definition } = await loadFunction(file, hostEnv);
  const name = (values.name as string | undefined) ?? workerName(definition.name);
  const dryRun = values['dry-run'] === true;
  const started = Date.now();
  const result = await deployCloudflare({
    entry: file,
    name,
    outdir: (values.outdir as string | undefined) ?? join(microFnHome(hostEnv), 'builds', 'cloudflare', name),
    vars: env,
    // Workers queue names take no dots: a subscriber of user.created is fed by queue user-created.
    queues: Object.keys(definition.subscribers ?? {}).map((topic) => topic.replaceAll('.', '-')),
    compatibilityDate: values['compatibility-date'] as string | undefined,
    dryRun,
    url: values.url as string | undefined,
    env: hostEnv,
    // wrangler's variable for another API base (a proxy, or a stand-in in tests)
    apiBase: hostEnv.CLOUDFLARE_API_BASE_URL,
    onProgress: json ? undefined : (line) => process.stderr.write(`${dim(line)}\n`),
  });
  // Registered without a TTL: nothing runs between invocations to refresh it.
  if (result.address && !dryRun) await withSession(values, (session) => session.plugins.registry.register(workerRecord(definition, result.address), { ttl: 0 }).then(() => 0));
  if (json) await write(process.stdout, `${JSON.stringify({ name, address: result.address, dryRun, files: result.files, bundle: result.build.file })}\n`);
  else if (!dryRun) process.stderr.write(`deployed ${definition.name} ${dim(`as Worker ${name} at ${result.address} in ${Date.now() - started} ms`)}\n`);
  return 0;
}

function whole(value: unknown, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UserError(`--${flag} takes a whole number of at least ${min}; got "${value}"`);
  return n;
}

function envPair(text: string): [string, string] {
  const i = text.indexOf('=');
  if (i === 0) throw new UserError(`--env takes KEY=VALUE or KEY; got "${text}"`);
  if (i > 0) return [text.slice(0, i), text.slice(i + 1)];
  const value = process.env[text];
  if (value === undefined) throw new UserError(`--env ${text}: ${text} is not set here; give it a value with --env ${text}=VALUE`);
  return [text, value];
}

export const kib = (bytes: number) => (bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`);
