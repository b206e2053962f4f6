/**
 * One bundle for Node: the function, micro-fn's runtime from this package, and the runtime plugins a selection
 * carries, as one ES module file. One file because Node loads every ES module file separately (about a
 * millisecond each); modules reached by `import()` stay lazily initialised inside it. Build-time only.
 */
import { isBuiltin } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { BuildResult, Metafile } from 'esbuild';
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
  /**
   * Also write the same code as a CommonJS script, `<outdir>/index.cjs` (with its linked map), which `vm.Script` can
   * compile with a V8 code cache; only where it behaves as the module does (see bundleScript). Default false.
   */
  script?: boolean;
}

/** Bundles `options.contents` into `<outdir>/index.mjs` and reports its size and input files. */
export async function bundleNode(given: NodeBundleOptions): Promise<Built> {
  const root = packageRoot();
  const { pluginsPlugin, selectionDefines } = await import('./plugins.js');
  const options = { ...given, define: { ...given.define, ...selectionDefines(given.plugins) } };
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
  if (options.script) await bundleScript(options, join(resolve(options.outdir), 'index.cjs'), metafile);
  return { file: outfile, size: outputBytes(metafile), inputs };
}

/**
 * The module's code again as one CommonJS script at `outfile`, when it can behave exactly as the module: no top-level
 * await, no `import.meta` but its url, dirname and filename (the module's own, as the one file it is), and no static
 * import of a package left outside the bundle (a script would require() it: an ES-only package fails so on older
 * Node 20). It runs in strict mode, as module code does. Otherwise no script is written (the module is loaded as it
 * is). The module's build is reused as is: same plugins, same define.
 */
async function bundleScript(options: NodeBundleOptions, outfile: string, module: Metafile): Promise<void> {
  const { rm } = await import('node:fs/promises');
  await rm(outfile, { force: true });
  await rm(`${outfile}.map`, { force: true });
  const staticExternal = Object.values(module.outputs).some((out) =>
    out.imports.some((i) => i.external && i.kind !== 'dynamic-import' && !isBuiltin(i.path)),
  );
  if (staticExternal) return;
  const { build } = await import('esbuild');
  const root = packageRoot();
  const { pluginsPlugin } = await import('./plugins.js');
  let result: BuildResult<{ metafile: true }>;
  try {
    result = await build({
      entryPoints: ['micro-fn-entry'],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: options.target ?? 'node20',
      sourcemap: options.sourcemap ? 'linked' : false,
      sourcesContent: false,
      minify: options.minify ?? false,
      outfile,
      external: options.external,
      define: {
        ...options.define,
        'import.meta.url': '__microFnModuleUrl',
        'import.meta.dirname': '__dirname',
        'import.meta.filename': '__filename',
      },
      banner: { js: `'use strict';\nconst __microFnModuleUrl = require('node:url').pathToFileURL(__filename).href;` },
      metafile: true,
      logLevel: 'silent',
      plugins: [
        virtualEntry('micro-fn-entry', options.contents, dirname(options.entry)),
        selfPlugin(root),
        pluginsPlugin(options.plugins, root, options.define),
        (await import('./config-file.js')).configFilePlugin(dirname(options.entry), root),
      ],
    });
  } catch {
    return; // top-level await, mostly: the module alone is loaded
  }
  if (result.warnings.some((w) => w.id === 'empty-import-meta')) {
    await rm(outfile, { force: true });
    await rm(`${outfile}.map`, { force: true });
  }
}
