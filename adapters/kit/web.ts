/**
 * One bundle for a Web-standard platform (Cloudflare Workers, Deno): one ES module, no Node built-ins, the runtime
 * plugins the function's configuration selects with their Web packages. One module, not chunks: workerd compiles
 * every uploaded module at start anyway, and code split into chunks would carry the plugins a configuration does
 * not select (esbuild emits a chunk for every `import()` it reads, used or not). A function that pulls in a Node
 * built-in fails with a one-line UserError naming the import chain. Build-time only.
 */
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import type { Metafile, Plugin } from 'esbuild';
import type { Env } from '../../runtime/core/config.js';
import { UserError } from '../../runtime/core/errors.js';
import { inOutput, runEsbuild, selfPlugin, virtualEntry } from './esbuild.js';
import { packageRoot } from './package-root.js';
import { pluginsPlugin, selectionDefines } from './plugins.js';
import { configFilePlugin } from './config-file.js';

export interface WebBundleOptions {
  /** The function's entry file: the generated main module resolves its imports from its folder. */
  entry: string;
  /** The main module (it imports the function and an adapter's handler). */
  contents: string;
  outdir: string;
  minify: boolean;
  /** The function's configuration: only the plugins it selects are bundled. */
  env: Env;
  /** Package export conditions, most specific first (`workerd`, `deno`), before `worker` and `browser`. */
  conditions: string[];
  /** Who lacks Node built-ins, for the error: `Workers`, `Deno Deploy`. */
  platformName: string;
  /**
   * A source map beside the main module (`index.mjs.map`, linked by a comment, never inline): for a platform that
   * maps stacks with an uploaded map (Workers). Default false.
   */
  sourcemap?: boolean;
  /** Build constants (runtime/core/build-constants.ts) and their values. */
  define?: Record<string, string>;
}

export interface WebBundle {
  /** The main module, `<outdir>/index.mjs`. */
  file: string;
  /** Its bytes. */
  size: number;
  /** Bytes loaded at start: all of it. */
  startSize: number;
  ms: number;
  /** More modules: none (a deploy uploads every module of the build, so it stays a list). */
  artifacts: { file: string; size: number }[];
  /** The main module's source map, when asked for: uploaded beside it, never loaded. */
  sourceMap?: string;
  /** Every input file of the bundle (absolute paths). */
  inputs: string[];
}

/** The main module's file name. */
export const MAIN_MODULE = 'index.mjs';
const ENTRY = 'micro-fn-web-entry';
const BUILTINS = new Set(builtinModules);

/** Bundles `options.contents` as the main module of a Web-platform function. */
export async function bundleWeb(options: WebBundleOptions): Promise<WebBundle> {
  const started = Date.now();
  const { rm } = await import('node:fs/promises');
  const root = packageRoot();
  const outdir = resolve(options.outdir);
  // Chunks an older micro-fn wrote there: a deploy of the folder would upload them too.
  await rm(join(outdir, 'chunks'), { recursive: true, force: true });
  const builtins: BuiltinImport[] = [];
  const selection = { platform: 'web', env: options.env } as const;
  const define = { ...options.define, ...selectionDefines(selection) };
  const metafile = await runEsbuild({
    entryPoints: { index: ENTRY },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: [...options.conditions, 'worker', 'browser'],
    target: 'es2022',
    outfile: join(outdir, MAIN_MODULE),
    minify: options.minify,
    define,
    // Positions only (what maps a stack), not the sources: the upload stays small.
    ...(options.sourcemap ? { sourcemap: 'linked' as const, sourcesContent: false } : {}),
    logLevel: 'silent',
    plugins: [
      virtualEntry(ENTRY, options.contents, dirname(options.entry)),
      selfPlugin(root),
      pluginsPlugin(selection, root, define),
      configFilePlugin(dirname(options.entry), root),
      nodeBuiltins(builtins),
    ],
  });
  // Only a built-in that is in the output counts: one read in code the bundle drops never runs.
  const kept = new Set(inOutput(metafile).map((input) => resolve(input)));
  const imported = new Set(Object.values(metafile.outputs).flatMap((out) => out.imports.map((i) => i.path)));
  const builtin = builtins.find((b) => kept.has(b.importer) && imported.has(b.path));
  if (builtin) throw new UserError(builtinMessage(builtin, metafile, options.platformName));
  const file = join(outdir, MAIN_MODULE);
  const size = Object.entries(metafile.outputs).find(([path]) => resolve(path) === file)![1].bytes;
  if (!options.sourcemap) await rm(`${file}.map`, { force: true }); // an older build's: never uploaded stale
  return {
    file,
    size,
    startSize: size,
    ms: Date.now() - started,
    artifacts: [],
    inputs: Object.keys(metafile.inputs)
      .filter((p) => !/^micro-fn-[a-z-]+:/.test(p)) // generated modules (namespace:path) are not files
      .map((p) => resolve(p)),
    ...(options.sourcemap ? { sourceMap: `${file}.map` } : {}),
  };
}

interface BuiltinImport {
  /** As written: `node:fs`, `fs/promises`. */
  path: string;
  /** Absolute path of the file that imports it. */
  importer: string;
}

/**
 * Catches imports of Node built-ins that nothing in the build maps to a Web replacement (a package's `browser`
 * field or an installed polyfill is honoured). They are kept external so that the build completes and the import
 * chain can be read from its metafile. A `require()` inside a dependency is left alone: packages that run in
 * browsers and Node guard such a call (`typeof require`), and if one is reached on the platform it throws.
 */
function nodeBuiltins(found: BuiltinImport[]): Plugin {
  return {
    name: 'micro-fn-no-node-builtins',
    setup(build) {
      build.onResolve({ filter: /^[a-z_:/]+$/ }, async (args) => {
        if (args.pluginData === 'builtin-check' || !(args.path.startsWith('node:') || BUILTINS.has(args.path)))
          return undefined;
        const resolved = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: 'builtin-check',
        });
        if (resolved.errors.length === 0)
          return {
            path: resolved.path,
            external: resolved.external,
            namespace: resolved.namespace,
            sideEffects: resolved.sideEffects,
          };
        if (!(args.kind === 'require-call' && /[\\/]node_modules[\\/]/.test(args.importer)))
          found.push({ path: args.path, importer: args.importer });
        return { path: args.path, external: true };
      });
    },
  };
}

/**
 * One line: the chain of imports from the function's entry (or micro-fn's handler) to the built-in, e.g.
 * `examples/fs/index.ts → examples/fs/read.ts → node:fs`.
 */
function builtinMessage(builtin: BuiltinImport, metafile: Metafile, platformName: string): string {
  const target = relative(process.cwd(), builtin.importer);
  // Breadth-first from the main module over the metafile's imports: the shortest chain.
  const start = `micro-fn-entry:${ENTRY}`;
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
  return `build failed: ${chain.join(' → ')}: ${builtin.path} is a Node built-in, and a ${platformName} bundle takes Web APIs only (fetch, crypto.subtle, Request, streams) or packages that run on them`;
}
