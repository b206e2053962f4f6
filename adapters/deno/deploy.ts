/**
 * Build-time only: deploys a function for Deno as a folder Deno's own tooling runs: the bundle, a `deno.json`
 * whose `start` task serves it with least privilege, and the function's variables in `.env`. micro-fn uploads
 * nothing to Deno: `deno task start` runs the folder on a machine, Deno Deploy runs it uploaded by Deno's tools.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { ServiceDefinition, ServiceRecord } from '../../runtime/core/index.js';
import { deploymentRecord } from '../kit/register.js';
import { MAIN_MODULE, buildDeno, type DenoBuild } from './build.js';
import { denoJson, dotenv } from './config.js';

export interface DenoDeployOptions {
  /** The function's entry file (resolved). */
  entry: string;
  /** The service name, for the task's description. */
  name: string;
  /** Where the bundle, `deno.json` and `.env` go. */
  outdir: string;
  /** The function's variables (`MICRO_*` and what its handlers read from `ctx.env`): selects the plugins bundled. */
  vars?: Record<string, string>;
  /** Hosts its handlers reach themselves, for `--allow-net` (all hosts when it has a registry or broker). */
  allowNet?: string[];
  /** `deno serve --host` / `--port` in the task; default Deno's (0.0.0.0:8000). */
  host?: string;
  port?: number;
  /** Called with each step, one line each. */
  onProgress?: (line: string) => void;
}

export interface DenoDeployResult {
  build: DenoBuild;
  /** What was written besides the bundle: `deno.json`, and `.env` when there are variables. */
  files: string[];
}

/**
 * Builds `entry` into `outdir` with the `deno.json` and `.env` that serve it.
 * @example
 * await deployDeno({ entry: '/app/examples/helloworld/index.ts', name: 'helloworld', outdir: 'deno/helloworld' });
 * // cd deno/helloworld && deno task start
 */
export async function deployDeno(options: DenoDeployOptions): Promise<DenoDeployResult> {
  const progress = options.onProgress ?? (() => {});
  const { outdir, vars = {} } = options;
  const env = Object.keys(vars).length > 0 ? dotenv(vars) : undefined;
  const { name, allowNet, host, port } = options;
  const config = denoJson({ name, main: MAIN_MODULE, vars, allowNet, host, port });
  const build = await buildDeno(options.entry, { outdir, minify: true, env: vars });
  progress(`built ${relative(process.cwd(), build.file)} (${build.size} bytes) in ${build.ms} ms`);
  const configFile = join(outdir, 'deno.json');
  await writeFile(configFile, config);
  const files = [configFile];
  const envFile = join(outdir, '.env');
  // A .env an earlier deploy wrote goes; a new one is created 0600, as it may hold secrets.
  await rm(envFile, { force: true });
  if (env !== undefined) {
    await writeFile(envFile, env, { mode: 0o600 });
    files.push(envFile);
  }
  const wrote = files.map((f) => relative(process.cwd(), f)).join(', ');
  progress(`wrote ${wrote}: serve it with \`deno task start\` in ${relative(process.cwd(), outdir) || '.'}`);
  return { build, files };
}

/** The registry entry of a function Deno serves at `address` (node id `<service>-deno`). Register it without a TTL. */
export function denoRecord(definition: ServiceDefinition, address: string): ServiceRecord {
  return deploymentRecord(definition, { id: `${definition.name}-deno`, address, metadata: { target: 'deno' } });
}
