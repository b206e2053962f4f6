/**
 * Build-time only: deploys a function as a Cloudflare Worker through the Workers script upload API, or
 * writes what `wrangler deploy` needs (`dryRun`).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { UserError, type Registry, type ServiceDefinition, type ServiceRecord } from '../../runtime/core/index.js';
import { deploymentRecord } from '../kit/register.js';
import { CloudflareApi, type UploadBinding, type UploadMetadata, type UploadModule } from './api.js';
import { MAIN_MODULE, buildCloudflare, type CloudflareBuild } from './build.js';
import { wranglerToml } from './wrangler.js';

/**
 * The compatibility date a deploy asks for unless told otherwise: the workerd release micro-fn's Worker
 * tests run on. No compatibility flag is set: the bundle holds no Node built-in, so `nodejs_compat`
 * (on by default from 2026-08-04) changes nothing for it.
 */
export const COMPATIBILITY_DATE = '2026-04-26';

export interface CloudflareDeployOptions {
  /** The function's entry file (resolved). */
  entry: string;
  /** The Worker's name: a service name with its dots and underscores made dashes (see `workerName`). */
  name: string;
  /** Where the bundle goes (and, with `dryRun`, `metadata.json` and `wrangler.toml`). */
  outdir: string;
  /**
   * Plain-text bindings: the function's configuration (`MICRO_*` and what its handlers read from `ctx.env`).
   * The NATS plugins are bundled only when MICRO_REGISTRY or MICRO_BROKER names NATS.
   */
  vars?: Record<string, string>;
  /** Queues whose messages trigger the function (its subscribers' topics, dots as dashes). */
  queues?: string[];
  /**
   * The Workers KV namespace to bind when `vars` choose the cloudflare-kv store (MICRO_STORE=cloudflare-kv), by id.
   * Default: the account's namespace titled KV_NAMESPACE_TITLE, created on the first deploy; a dry run leaves the id
   * out of wrangler.toml, which wrangler (4.45 and later) then provisions the same way.
   */
  kvNamespace?: string;
  /** Default COMPATIBILITY_DATE. */
  compatibilityDate?: string;
  /** Write the bundle, the upload metadata and a wrangler.toml, upload nothing. */
  dryRun?: boolean;
  /** The node address to return instead of `https://NAME.SUBDOMAIN.workers.dev` (a custom domain). */
  url?: string;
  /** Where CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN are read. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The Cloudflare API's base URL; tests point it at a local server. */
  apiBase?: string;
  /** Called with each step, one line each. */
  onProgress?: (line: string) => void;
}

/** The title of the Workers KV namespace a deploy binds for the cloudflare-kv store unless given one. */
export const KV_NAMESPACE_TITLE = 'micro-fn-store';
/** The binding the cloudflare-kv store reads unless MICRO_STORE_ADDRESS names another. */
export const KV_BINDING = 'MICRO_FN_STORE';

export interface CloudflareDeployResult {
  /** The node address to register: `https://NAME.SUBDOMAIN.workers.dev`, or `url`. Empty after a dry run without `url`. */
  address: string;
  build: CloudflareBuild;
  /** What a dry run wrote besides the bundle. */
  files: string[];
}

/**
 * Builds and uploads `entry` as the Worker `name`, serves it on workers.dev and returns its node address.
 * @example
 * const { address } = await deployCloudflare({ entry: '/app/examples/helloworld/index.ts', name: 'helloworld', outdir: 'dist/helloworld',
 *   vars: { MICRO_REGISTRY: 'nats', MICRO_REGISTRY_ADDRESS: 'wss://nats.example.com:443' }, onProgress: console.error });
 * // https://helloworld.my-team.workers.dev
 */
export async function deployCloudflare(options: CloudflareDeployOptions): Promise<CloudflareDeployResult> {
  const progress = options.onProgress ?? (() => {});
  const name = checkName(options.name);
  const env = options.env ?? process.env;
  const accountId = env.CLOUDFLARE_ACCOUNT_ID;
  const token = env.CLOUDFLARE_API_TOKEN;
  if (!options.dryRun && (!accountId || !token)) {
    throw new UserError(
      'set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN (a token with Workers Scripts: Edit), or deploy with --dry-run and then wrangler',
    );
  }
  const vars = options.vars ?? {};
  // Only the plugins the configuration selects: workerd compiles every uploaded module at start.
  const build = await buildCloudflare(options.entry, { outdir: options.outdir, minify: true, env: vars });
  progress(
    `built ${relative(process.cwd(), build.file)} (${build.startSize} bytes loaded at start, ${build.artifacts.length} more modules) in ${build.ms} ms`,
  );
  const compatibilityDate = options.compatibilityDate ?? COMPATIBILITY_DATE;
  const bindings: UploadBinding[] = Object.entries(vars).map(([key, text]) => ({
    type: 'plain_text',
    name: key,
    text,
  }));
  const metadata: UploadMetadata = { main_module: MAIN_MODULE, compatibility_date: compatibilityDate, bindings };
  const queues = options.queues ?? [];
  // The cloudflare-kv store reads a KV namespace binding: without it, every store call is a 501.
  const kv = vars.MICRO_STORE === 'cloudflare-kv' ? { binding: vars.MICRO_STORE_ADDRESS || KV_BINDING } : undefined;

  if (options.dryRun) {
    if (kv && options.kvNamespace)
      bindings.push({ type: 'kv_namespace', name: kv.binding, namespace_id: options.kvNamespace });
    const files = [join(options.outdir, 'metadata.json'), join(options.outdir, 'wrangler.toml')];
    await writeFile(files[0]!, `${JSON.stringify(metadata, null, 2)}\n`);
    const kvNamespaces = kv ? [{ binding: kv.binding, id: options.kvNamespace }] : [];
    await writeFile(
      files[1]!,
      wranglerToml({ name, main: MAIN_MODULE, compatibilityDate, vars, queues, kvNamespaces }),
    );
    progress(
      `dry run: wrote ${files.map((f) => relative(process.cwd(), f)).join(', ')}; deploy with \`npx wrangler deploy\` in ${relative(process.cwd(), options.outdir) || '.'}`,
    );
    return { address: options.url ?? '', build, files };
  }

  const api = new CloudflareApi({ accountId: accountId!, token: token!, apiBase: options.apiBase });
  if (kv) {
    let id = options.kvNamespace;
    if (!id) {
      const found = await api.kvNamespace(KV_NAMESPACE_TITLE);
      id = found.id;
      progress(`${found.created ? 'created' : 'found'} the Workers KV namespace ${KV_NAMESPACE_TITLE} (${id})`);
    }
    bindings.push({ type: 'kv_namespace', name: kv.binding, namespace_id: id });
    progress(`the store is the KV namespace ${id}, bound as ${kv.binding}`);
  }
  const modules: UploadModule[] = await Promise.all(
    [build.file, ...build.artifacts.map((a) => a.file)].map(async (file) => ({
      name: relative(options.outdir, file).split('\\').join('/'),
      code: await readFile(file),
    })),
  );
  // The main module's source map, as wrangler uploads it: Cloudflare maps the Worker's stack traces with it.
  if (build.sourceMap)
    modules.push({ name: `${MAIN_MODULE}.map`, code: await readFile(build.sourceMap), type: 'application/source-map' });
  await api.uploadScript(name, metadata, modules);
  progress(`uploaded Worker ${name} (${modules.length} modules, compatibility date ${compatibilityDate})`);
  for (const queue of queues)
    progress(`to trigger it from queue ${queue}: npx wrangler queues consumer add ${queue} ${name}`);
  if (options.url) return { address: options.url, build, files: [] };
  await api.enableWorkersDev(name);
  const address = `https://${name}.${await api.workersSubdomain()}.workers.dev`;
  progress(`serving at ${address}`);
  return { address, build, files: [] };
}

/** A Worker name for a service name: lower case, dots and underscores as dashes (`go.micro.greeter` -> `go-micro-greeter`). */
export function workerName(service: string): string {
  return service.toLowerCase().replace(/[._]/g, '-');
}

/** Workers names are DNS labels on workers.dev: lower-case letters, digits and dashes, up to 63, starting with a letter. */
function checkName(name: string): string {
  if (!/^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
    throw new UserError(
      `"${name}" cannot be a Worker name: lower-case letters, digits and dashes, starting with a letter, at most 63 (try "${workerName(name)}")`,
    );
  }
  return name;
}

/** The registry entry of a deployed Worker at `address` (node id `<service>-cloudflare`). Register it without a TTL. */
export function workerRecord(definition: ServiceDefinition, address: string): ServiceRecord {
  return deploymentRecord(definition, {
    id: `${definition.name}-cloudflare`,
    address,
    metadata: { target: 'cloudflare' },
  });
}

export interface CloudflareRemoveOptions {
  /** The service name. */
  service: string;
  /** The Worker's name; default `workerName(service)`. */
  name?: string;
  registry: Registry;
  /** Where CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN are read. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  apiBase?: string;
  onProgress?: (line: string) => void;
}

export interface CloudflareRemoveResult {
  worker: string;
  /** False when the account had no such Worker. */
  deleted: boolean;
  /** The node addresses deregistered. */
  deregistered: string[];
}

/**
 * Deletes the Worker of `service` and deregisters it (its node `<service>-cloudflare`). A Worker already gone with an
 * entry left is no failure (the entry goes); neither is a UserError.
 * @example
 * await removeCloudflare({ service: 'helloworld', registry, onProgress: console.error });
 */
export async function removeCloudflare(options: CloudflareRemoveOptions): Promise<CloudflareRemoveResult> {
  const progress = options.onProgress ?? (() => {});
  const worker = checkName(options.name ?? workerName(options.service));
  const env = options.env ?? process.env;
  const accountId = env.CLOUDFLARE_ACCOUNT_ID;
  const token = env.CLOUDFLARE_API_TOKEN;
  if (!accountId || !token)
    throw new UserError('set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN (a token with Workers Scripts: Edit)');
  const api = new CloudflareApi({ accountId, token, apiBase: options.apiBase });
  const deleted = await api.deleteScript(worker);
  progress(deleted ? `deleted Worker ${worker}` : `the account has no Worker ${worker}`);
  const id = `${options.service}-cloudflare`;
  const deregistered: string[] = [];
  for (const record of await options.registry.getService(options.service)) {
    const nodes = record.nodes.filter((n) => n.id === id);
    if (nodes.length === 0) continue;
    await options.registry.deregister({ ...record, nodes });
    deregistered.push(...nodes.map((n) => n.address));
  }
  if (deregistered.length > 0) progress(`deregistered ${options.service} (${deregistered.join(', ')})`);
  if (!deleted && deregistered.length === 0)
    throw new UserError(
      `there is no Worker ${worker} to remove and no registry entry of ${options.service} on Workers`,
    );
  return { worker, deleted, deregistered };
}
