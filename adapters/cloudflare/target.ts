/** The Cloudflare Workers target, declared once: its build, its deploy and their options. Build-time only. */
import { join } from 'node:path';
import { microFnHome } from '../../runtime/plugins/local/home.js';
import { loadDefinition } from '../kit/definition.js';
import { registerDeployment } from '../kit/register.js';
import { duration } from '../kit/options.js';
import { defineTarget } from '../kit/target.js';

export const target = defineTarget({
  name: 'cloudflare',
  summary: 'Cloudflare Workers: a module worker whose fetch takes one invocation and whose queue takes messages',
  platform: 'web',
  description: [
    'Bundles it as a module worker, uploads it with the Workers script API (CLOUDFLARE_ACCOUNT_ID,',
    'CLOUDFLARE_API_TOKEN), serves it on workers.dev and registers that address (--url for your own domain). Its',
    "--env become the Worker's plain-text bindings; NATS must be a ws:// or wss:// address. With",
    'MICRO_STORE=cloudflare-kv it binds a Workers KV namespace (--kv-namespace, else micro-fn-store, created once).',
    '--dry-run writes the bundle, the upload metadata and a wrangler.toml instead, for `npx wrangler deploy`.',
  ],
  options: {
    name: {
      type: 'string',
      value: 'NAME',
      description: "the Worker's name (default: the service name, dots as dashes)",
    },
    url: { type: 'string', value: 'URL', description: 'the address to register instead of NAME.SUBDOMAIN.workers.dev' },
    outdir: {
      type: 'string',
      short: 'o',
      value: 'DIR',
      description: 'where the bundle (and dry-run files) go (default under MICRO_FN_HOME/builds)',
    },
    'kv-namespace': {
      type: 'string',
      value: 'ID',
      description:
        'the Workers KV namespace the cloudflare-kv store uses (default: micro-fn-store, created on the first deploy)',
    },
    'compatibility-date': { type: 'string', value: 'YYYY-MM-DD', description: "the Worker's compatibility date" },
    'dry-run': { type: 'boolean', description: 'write the files for wrangler instead of uploading' },
    timeout: {
      type: 'string',
      value: 'DURATION',
      description: "the longest a handler may run, e.g. 10s (the Worker's MICRO_FN_TIMEOUT); 408 past it",
    },
  },
  examples: [
    'micro-fn deploy examples/helloworld --target cloudflare --env MICRO_REGISTRY=nats --env MICRO_REGISTRY_ADDRESS=wss://nats.example.com',
    'micro-fn deploy examples/helloworld --target cloudflare --dry-run --outdir worker/',
  ],
  async build({ entry, outdir, minify, env }) {
    const { buildCloudflare } = await import('./build.js');
    return buildCloudflare(entry, { outdir, minify, env });
  },
  async deploy({ entry, env, hostEnv, options, session, progress }) {
    const { deployCloudflare, workerName, workerRecord } = await import('./deploy.js');
    const definition = await loadDefinition(entry, hostEnv);
    const name = options.name ?? workerName(definition.name);
    const dryRun = options['dry-run'] === true;
    const timeout = duration(options.timeout, 'timeout') || undefined;
    const started = Date.now();
    const result = await deployCloudflare({
      entry,
      name,
      outdir: options.outdir ?? join(microFnHome(hostEnv), 'builds', 'cloudflare', name),
      // The Worker reads its timeout from its bindings, as every host reads MICRO_FN_TIMEOUT.
      vars: timeout === undefined ? env : { ...env, MICRO_FN_TIMEOUT: String(timeout) },
      // Workers queue names take no dots: a subscriber of user.created is fed by queue user-created.
      queues: Object.keys(definition.subscribers ?? {}).map((topic) => topic.replaceAll('.', '-')),
      compatibilityDate: options['compatibility-date'],
      kvNamespace: options['kv-namespace'],
      dryRun,
      url: options.url,
      env: hostEnv,
      // wrangler's variable for another API base (a proxy, or a stand-in in tests)
      apiBase: hostEnv.CLOUDFLARE_API_BASE_URL,
      onProgress: progress,
    });
    if (result.address && !dryRun)
      await registerDeployment((await session()).registry, workerRecord(definition, result.address));
    return {
      name: definition.name,
      address: result.address || undefined,
      summary: dryRun
        ? `wrote Worker ${name} to ${result.build.file}`
        : `deployed ${definition.name} as Worker ${name} at ${result.address} in ${Date.now() - started} ms`,
      details: { name, address: result.address, dryRun, files: result.files, bundle: result.build.file },
    };
  },
  removeOptions: {
    name: {
      type: 'string',
      value: 'NAME',
      description: "the Worker's name (default: the service name, dots as dashes)",
    },
  },
  async remove({ name, hostEnv, options, session, progress }) {
    const { removeCloudflare } = await import('./deploy.js');
    const { registry } = await session();
    const result = await removeCloudflare({
      service: name,
      name: options.name,
      registry,
      env: hostEnv,
      apiBase: hostEnv.CLOUDFLARE_API_BASE_URL,
      onProgress: progress,
    });
    return {
      summary: `removed ${name}: ${result.deleted ? `deleted Worker ${result.worker}` : `Worker ${result.worker} was already gone`}${result.deregistered.length > 0 ? ', deregistered' : ''}`,
      details: { ...result },
    };
  },
});
