/**
 * One bundle for Node: the function, micro-fn's runtime from this package, and the runtime plugins a selection
 * carries, as one ES module file. One file because Node loads every ES module file separately (about a
 * millisecond each); modules reached by `import()` stay lazily initialised inside it. Build-time only.
 */
import { dirname, join, resolve } from 'node:path';
import { outputBytes, runEsbuild, selfPlugin, virtualEntry } from './esbuild.js';
import { packageRoot } from './package-root.js';
import type { PluginSelection } from './plugins.js';
import type { Built } from './cache.js';

export interface NodeBundleOptions {
  /** The function's entry file: the generated module resolves its imports from its folder. */
  entry: string;
  /** The module that becomes the bundle's entry (it imports the function and an adapter's handler). */
  contents: string;
  /** The bundle is `<outdir>/index.mjs`. */
  outdir: string;
  /** `node20` (default), `node22`. */
  target?: string;
  minify?: boolean;
  /** A linked source map beside it (default false). */
  sourcemap?: boolean;
  plugins: PluginSelection;
  /** Packages the host provides (`@aws-sdk/*` on Lambda). */
  external?: string[];
  /** Build constants (runtime/core/build-constants.ts) and their values, e.g. `{ [noListener]: 'true' }`. */
  define?: Record<string, string>;
}

/** Bundles `options.contents` into `<outdir>/index.mjs` and reports its size and input files. */
export async function bundleNode(options: NodeBundleOptions): Promise<Built> {
  const root = packageRoot();
  const { pluginsPlugin } = await import('./plugins.js');
  const outfile = join(resolve(options.outdir), 'index.mjs');
  const metafile = await runEsbuild({
    entryPoints: ['micro-fn-entry'],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: options.target ?? 'node20',
    // Linked: a separate file, never inside the loaded code; positions only (what maps a stack), not the sources.
    sourcemap: options.sourcemap ? 'linked' : false,
    sourcesContent: false,
    minify: options.minify ?? false,
    outfile,
    external: options.external,
    define: options.define,
    logLevel: 'silent',
    plugins: [
      virtualEntry('micro-fn-entry', options.contents, dirname(options.entry)),
      selfPlugin(root),
      pluginsPlugin(options.plugins, root, options.define),
      (await import('./config-file.js')).configFilePlugin(dirname(options.entry), root),
    ],
  });
  const inputs = Object.keys(metafile.inputs)
    .filter((p) => !/^micro-fn-[a-z-]+:/.test(p)) // generated modules (namespace:path) are not files
    .map((p) => resolve(p));
  return { file: outfile, size: outputBytes(metafile), inputs };
}
