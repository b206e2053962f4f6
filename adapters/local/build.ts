/**
 * Build-time only: bundles a function entry for Node with the local handler inside: what `micro-fn serve` runs in
 * a fresh process per invocation, and what `micro-fn invoke` and `run` load. Every plugin for Node is in it (the
 * configuration is read when it runs); their packages are imported from micro-fn's own install. Bundles are
 * cached under MICRO_FN_HOME unless an outdir is given.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import type { Env } from '../../runtime/core/config.js';
import { cached, type CachedBuild } from '../kit/cache.js';
import { packageRoot, source } from '../kit/package-root.js';
import type * as CodeCache from './code-cache.cjs';

export interface LocalBuildOptions {
  /** Where to write the bundle; default: a cache folder under MICRO_FN_HOME. */
  outdir?: string;
  minify?: boolean;
  /** Where MICRO_FN_HOME is (default process.env). */
  env?: Env;
  /**
   * Beside index.mjs, the same code as index.cjs with V8's code cache for this Node (adapters/local/code-cache.cjs),
   * which function processes and `micro-fn invoke` load instead (default true). False: index.mjs alone.
   */
  codeCache?: boolean;
  /**
   * Runs the built script's top level once, in a process of its own, so its code cache holds all it ran (see
   * writeCodeCache). Only for a build by the user whose code it is (the CLI): never inside serve, which would run it
   * as serve's user.
   */
  warmCache?: boolean;
}

/**
 * Bundles `entry` (a resolved file) with the local handler into `outdir/index.mjs`, or into the cache, where an
 * up-to-date bundle is reused.
 * @example
 * const { file } = await buildLocal(resolveEntry('examples/helloworld'));
 * const { definition, invokeOnce } = await import(pathToFileURL(file).href);
 */
export async function buildLocal(entry: string, options: LocalBuildOptions = {}): Promise<CachedBuild> {
  // Loaded on a cache miss only: a hit is on every `micro-fn invoke`'s start-up path.
  const build = async (outdir: string) => {
    const built = await (
      await import('../kit/node.js')
    ).bundleNode({
      entry,
      outdir,
      contents: entryModule(entry),
      minify: options.minify,
      sourcemap: true,
      plugins: { platform: 'node', packages: 'external' },
      script: options.codeCache !== false,
    });
    if (options.codeCache !== false) writeCodeCache(built.file, false, options.warmCache === true);
    return built;
  };
  if (options.outdir) {
    const started = Date.now();
    const { file, size } = await build(options.outdir);
    return { file, size, cached: false, ms: Date.now() - started };
  }
  // Whether config.json is there: once it is, it is one of the bundle's inputs, but a file added later is not.
  const file = existsSync(join(dirname(entry), 'config.json')) ? 1 : 0;
  const built = await cached(
    'local',
    `${entry}\0${packageRoot()}\0${options.minify ? 1 : 0}\0${options.codeCache === false ? 0 : 1}\0${file}`,
    options.env ?? process.env,
    build,
  );
  // A bundle built by another Node: its script gets this Node's cache now (a file per Node version).
  if (built.cached && options.codeCache !== false) writeCodeCache(built.file, true);
  return built;
}

/** The code cache of the script beside `bundle`, when the build wrote one (adapters/local/code-cache.cjs). */
function writeCodeCache(bundle: string, ifMissing = false, warm = false): void {
  const script = bundle.replace(/\.mjs$/, '.cjs');
  if (!existsSync(script)) return;
  const require = createRequire(import.meta.url);
  const cacheModule = source('adapters/local/code-cache.cjs');
  const codeCache = require(cacheModule) as typeof CodeCache;
  if (ifMissing && existsSync(codeCache.cacheFile(script))) return;
  try {
    codeCache.produce(script);
  } catch {
    // A cache folder this user cannot write (another user's build): the script is compiled as it loads.
    return;
  }
  if (!warm) return;
  // The build's cache holds the script's top level only; one process that runs it (its modules' initialisation: the
  // bulk of a large bundle's start) leaves the bytecode of all it ran. Done here, by the user who builds: a process
  // of serve's function user may not write beside its copy, so without this every start compiles all of that anew.
  // Plain node, as function processes run (a V8 flag would make the cache theirs alone); a failure keeps the build's.
  const { NODE_OPTIONS: _options, MICRO_FN_IPC: _ipc, ...env } = process.env;
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  spawnSync(
    process.execPath,
    [
      '-e',
      `require(${JSON.stringify(cacheModule)}).loadBeside(${JSON.stringify(bundle)}); setImmediate(() => process.exit(0))`,
    ],
    {
      env,
      stdio: 'ignore',
      timeout: 10_000,
    },
  );
}

/** The bundle's entry: the function's definition, the local handler's exports, and the start of a serve process. */
function entryModule(entry: string): string {
  const handler = JSON.stringify(source('adapters/local/handler.ts'));
  return [
    `import * as mod from ${JSON.stringify(entry)};`,
    `import { asDefinition, serveIpc } from ${handler};`,
    `export const definition = asDefinition(mod.default, ${JSON.stringify(relative(process.cwd(), entry) || entry)});`,
    `export * from ${handler};`,
    // Started by `micro-fn serve`: serve one invocation over the pipe.
    `if (process.env.MICRO_FN_IPC === '1') serveIpc(definition).catch((err) => { console.error(err); process.exit(1); });`,
  ].join('\n');
}
