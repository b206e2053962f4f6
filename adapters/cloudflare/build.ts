/**
 * Build-time only: bundles a function entry as a Cloudflare module worker (ES modules, worker/browser
 * conditions, no Node built-ins) with the Workers handler as its main module.
 */
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import type { Metafile, Plugin } from 'esbuild';
import { UserError } from '../../runtime/core/errors.js';
import { buildFailure, packageRoot, selfPlugin } from '../local/build.js';

export interface CloudflareBuildOptions {
  outdir: string;
  minify: boolean;
  /**
   * Bundle the NATS plugins and their WebSocket client (into chunks loaded only when the env configures NATS).
   * Default true. Without them the upload is ~200 KB smaller and workerd starts the Worker ~15 ms sooner (it
   * compiles every uploaded module at start); a Worker built so refuses MICRO_REGISTRY/MICRO_BROKER=nats.
   */
  nats?: boolean;
}

export interface CloudflareBuild {
  /** The main module, `<outdir>/index.mjs`. */
  file: string;
  /** Its bytes. */
  size: number;
  /** Bytes a Worker loads at start: the main module and the chunks it imports statically (code it shares with lazy chunks). */
  startSize: number;
  ms: number;
  /**
   * The other modules, loaded only when used (the NATS plugins and their WebSocket client, say), under
   * `<outdir>/chunks/`. A deploy uploads them beside the main module.
   */
  artifacts: { file: string; size: number }[];
}

/** The main module's file name; deploy.ts names it in the upload's `main_module`. */
export const MAIN_MODULE = 'index.mjs';
const ENTRY = 'micro-fn-worker-entry';
const BUILTINS = new Set(builtinModules);

/**
 * Bundles `file` (a resolved entry) into `options.outdir` as a module worker. Code reached only by `import()`
 * (the NATS plugins) goes into chunks of its own; what a Worker loads at start (the handler, the runtime core,
 * the function) is `startSize`. A function that pulls in a Node built-in fails with a one-line UserError naming
 * the import chain.
 * @example
 * const built = await buildCloudflare('/app/examples/helloworld/index.ts', { outdir: 'dist/helloworld', minify: true });
 * console.log(built.file, built.startSize); // /app/dist/helloworld/index.mjs 27532
 */
export async function buildCloudflare(file: string, options: CloudflareBuildOptions): Promise<CloudflareBuild> {
  const started = Date.now();
  const [esbuild, { rm }] = await Promise.all([import('esbuild'), import('node:fs/promises')]);
  const root = packageRoot();
  const outdir = resolve(options.outdir);
  // Chunk names carry a hash: clear the old ones, or a wrangler deploy of the folder would upload them too.
  await rm(join(outdir, 'chunks'), { recursive: true, force: true });
  const builtins: BuiltinImport[] = [];
  let metafile: Metafile;
  try {
    ({ metafile } = await esbuild.build({
      entryPoints: { index: ENTRY },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      conditions: ['workerd', 'worker', 'browser'],
      target: 'es2022',
      splitting: true,
      outdir,
      outExtension: { '.js': '.mjs' },
      chunkNames: 'chunks/[name]-[hash]',
      minify: options.minify,
      metafile: true,
      logLevel: 'silent',
      plugins: [
        entryPlugin(file, join(root, 'adapters', 'cloudflare', 'handler.ts')),
        selfPlugin(root),
        options.nats === false ? withoutNats(root) : natsOverWebSocket(root),
        nodeBuiltins(builtins),
      ],
    }));
  } catch (err) {
    throw buildFailure(err);
  }
  if (builtins.length > 0) throw new UserError(builtinMessage(builtins[0]!, metafile));
  const modules = Object.entries(metafile.outputs)
    .filter(([path]) => path.endsWith('.mjs'))
    .map(([path, out]) => ({ file: resolve(path), size: out.bytes }));
  const main = modules.find((m) => m.file === join(outdir, MAIN_MODULE))!;
  const artifacts = modules.filter((m) => m !== main).sort((a, b) => a.file.localeCompare(b.file));
  return { file: main.file, size: main.size, startSize: loadedAtStart(metafile, relative(process.cwd(), main.file)), ms: Date.now() - started, artifacts };
}

/** Bytes of `output` and of every output it imports statically, transitively. */
function loadedAtStart(metafile: Metafile, output: string, seen = new Set<string>()): number {
  if (seen.has(output)) return 0;
  seen.add(output);
  const out = metafile.outputs[output]!;
  return out.imports.filter((i) => i.kind === 'import-statement').reduce((sum, i) => sum + loadedAtStart(metafile, i.path, seen), out.bytes);
}

/** The main module: the handler made from the function module's default export. */
function entryPlugin(file: string, handler: string): Plugin {
  const contents = [
    `import * as mod from ${JSON.stringify(file)};`,
    `import { createWorker } from ${JSON.stringify(handler)};`,
    `export default createWorker(mod.default, ${JSON.stringify(relative(process.cwd(), file) || file)});`,
  ].join('\n');
  return {
    name: 'micro-fn-worker-entry',
    setup(build) {
      build.onResolve({ filter: new RegExp(`^${ENTRY}$`) }, () => ({ path: ENTRY, namespace: ENTRY }));
      build.onLoad({ filter: /.*/, namespace: ENTRY }, () => ({ contents, resolveDir: dirname(file), loader: 'js' }));
    },
  };
}

/**
 * The NATS plugins import `nats` (nats.js, TCP through node:net); in a Worker the same API comes from
 * `nats.ws`, over the platform's WebSocket. Resolved from this package, as a dependency of micro-fn.
 */
function natsOverWebSocket(root: string): Plugin {
  return {
    name: 'micro-fn-nats-ws',
    setup(build) {
      build.onResolve({ filter: /^nats$/ }, async (args) => {
        const found = await build.resolve('nats.ws', { kind: args.kind, resolveDir: root });
        if (found.errors.length > 0) return { errors: [{ text: 'the Workers build needs the nats.ws package (NATS over WebSocket) beside micro-fn: npm install nats.ws' }] };
        return { path: found.path };
      });
    },
  };
}

/** Replaces the Worker's NATS plugins (adapters/cloudflare/nats.ts) with one that says how to get them. */
function withoutNats(root: string): Plugin {
  const plugins = join(root, 'adapters', 'cloudflare', 'plugins.ts');
  const contents = [
    `import { ConfigError } from ${JSON.stringify(join(root, 'runtime', 'core', 'config.ts'))};`,
    'export function natsPlugins() {',
    "  throw new ConfigError('this Worker was built without the NATS plugins: deploy it with MICRO_REGISTRY or MICRO_BROKER set to nats or jetstream');",
    '}',
  ].join('\n');
  return {
    name: 'micro-fn-without-nats',
    setup(build) {
      build.onResolve({ filter: /^\.\/nats\.js$/ }, (args) => (args.importer === plugins ? { path: 'nats-plugins', namespace: 'micro-fn-without-nats' } : undefined));
      build.onLoad({ filter: /.*/, namespace: 'micro-fn-without-nats' }, () => ({ contents, resolveDir: root, loader: 'js' }));
    },
  };
}

interface BuiltinImport {
  /** As written: `node:fs`, `fs/promises`. */
  path: string;
  /** Absolute path of the file that imports it. */
  importer: string;
}

/**
 * Catches imports of Node built-ins that nothing in the build maps to a Web replacement (a package's
 * `browser` field or an installed polyfill is honoured). They are kept external so that the build completes
 * and the import chain can be read from its metafile. A `require()` inside a dependency is left alone: packages
 * that run in browsers and Node guard such a call (`typeof require`), and if one is reached in a Worker it throws.
 */
function nodeBuiltins(found: BuiltinImport[]): Plugin {
  return {
    name: 'micro-fn-no-node-builtins',
    setup(build) {
      build.onResolve({ filter: /^[a-z_:/]+$/ }, async (args) => {
        if (args.pluginData === 'builtin-check' || !(args.path.startsWith('node:') || BUILTINS.has(args.path))) return undefined;
        const resolved = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: 'builtin-check' });
        if (resolved.errors.length === 0) return { path: resolved.path, external: resolved.external, namespace: resolved.namespace, sideEffects: resolved.sideEffects };
        if (!(args.kind === 'require-call' && /[\\/]node_modules[\\/]/.test(args.importer))) found.push({ path: args.path, importer: args.importer });
        return { path: args.path, external: true };
      });
    },
  };
}

/**
 * One line: the chain of imports from the function's entry (or micro-fn's handler) to the built-in, e.g.
 * `examples/fs/index.ts → examples/fs/read.ts → node:fs`.
 */
function builtinMessage(builtin: BuiltinImport, metafile: Metafile): string {
  const target = relative(process.cwd(), builtin.importer);
  // Breadth-first from the main module over the metafile's imports: the shortest chain.
  const start = `${ENTRY}:${ENTRY}`;
  const previous = new Map<string, string>([[start, '']]);
  const queue = [start];
  while (queue.length > 0 && !previous.has(target)) {
    const at = queue.shift()!;
    for (const imported of metafile.inputs[at]?.imports ?? []) {
      if (imported.external || previous.has(imported.path)) continue;
      previous.set(imported.path, at);
      queue.push(imported.path);
    }
  }
  const chain = [builtin.path];
  for (let at = target; at && at !== start; at = previous.get(at) ?? '') chain.unshift(at);
  return `build failed: ${chain.join(' → ')}: ${builtin.path} is a Node built-in, which Workers do not have; use a Web API (fetch, crypto.subtle, Request, streams) or a package that runs in Workers`;
}
