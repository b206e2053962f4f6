// Compiles the CLI and the library into dist/ with esbuild, and the library's declarations (.d.ts, the package's
// `types` conditions) into dist/types with tsc. `npm install` and `npm pack` run it (prepare).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('.', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
rmSync(new URL('./dist', import.meta.url), { recursive: true, force: true });

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  splitting: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  // Third-party packages stay imports: they are dependencies, loaded lazily by the code that needs them.
  packages: 'external',
};

// The library: one file per package.json export (its `source` condition); a pattern export (`./adapters/*`)
// stands for every folder it matches.
const library = Object.fromEntries(
  Object.entries(pkg.exports)
    .filter(([, target]) => typeof target === 'object' && target.source)
    .flatMap(([, target]) => expand(target))
    .map((target) => [target.default.replace(/^\.\/dist\//, '').replace(/\.js$/, ''), target.source]),
);

function expand(target) {
  if (!target.source.includes('*')) return [target];
  const [before, after] = target.source.split('*');
  return readdirSync(new URL(before, import.meta.url), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(new URL(`${before}${d.name}${after}`, import.meta.url)))
    .map((d) => ({ source: `${before}${d.name}${after}`, default: target.default.replace('*', d.name) }));
}

// Declarations from the sources (tsconfig.types.json), so a user's tsconfig reads .d.ts files and never type-checks
// micro-fn's own code. tsc runs as a process of its own, beside esbuild.
function declarations() {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const child = spawn(process.execPath, [tsc, '-p', 'tsconfig.types.json'], {
    cwd: new URL('.', import.meta.url),
    stdio: 'inherit',
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`tsc (declarations) exited ${code}`))));
  });
}

// `micro-fn invoke` on its own (cli/invoke-main.ts): one CommonJS file, dist/cli/invoke.cjs, that bin.cjs requires for
// that command, so a one-shot call's start reads one file instead of the CLI's graph of ES modules. What the cached
// path never runs stays out of it: each `import()` of a micro-fn module in its graph (a build on a cache miss, --help)
// loads that module's copy in the ES module CLI, built as an entry of its own under dist/cli/lazy/. The list is
// checked: a new lazy import of a micro-fn module fails the build until it is named here.
const invokeLazy = ['adapters/kit/node.ts', 'runtime/plugins/resolve.ts'];
const lazyOut = (source) => `lazy/${source.replace(/\.ts$/, '')}`;

/** Resolves the invoke entry's `import()` of a micro-fn module to its ES module copy under dist/cli/lazy/. */
const lazyImports = {
  name: 'micro-fn-lazy-imports',
  setup(build) {
    build.onResolve({ filter: /^\./ }, (args) => {
      if (args.kind !== 'dynamic-import') return undefined;
      const source = relative(root, resolve(args.resolveDir, args.path)).replace(/\.js$/, '.ts').split(sep).join('/');
      if (!invokeLazy.includes(source))
        return { errors: [{ text: `${source}: an import() in invoke's graph; name it in build.mjs's invokeLazy` }] };
      return { path: `./${lazyOut(source)}.js`, external: true };
    });
  },
};

await Promise.all([
  declarations(),
  esbuild.build({ ...common, entryPoints: library, outdir: 'dist', chunkNames: 'chunks/[name]-[hash]' }),
  esbuild.build({
    ...common,
    // launcher: the process `micro-fn serve` starts function processes from (serve/launcher.ts forks it).
    entryPoints: {
      main: 'cli/main.ts',
      launcher: 'serve/launcher-process.ts',
      ...Object.fromEntries(invokeLazy.map((source) => [lazyOut(source), source])),
    },
    outdir: 'dist/cli',
    chunkNames: '[name]-[hash]',
    define: { __MICRO_FN_VERSION__: JSON.stringify(pkg.version) },
  }),
  esbuild.build({
    ...common,
    entryPoints: { invoke: 'cli/invoke-main.ts' },
    outdir: 'dist/cli',
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    splitting: false,
    define: {
      'import.meta.url': '__microFnModuleUrl',
      'import.meta.dirname': '__dirname',
      'import.meta.filename': '__filename',
    },
    banner: { js: `'use strict';\nconst __microFnModuleUrl = require('node:url').pathToFileURL(__filename).href;` },
    plugins: [lazyImports],
  }),
]);

// The invoke entry with V8's code cache, as a local bundle's script has (adapters/local/code-cache.cjs): its hash on
// its last line and the bytecode of its top level for this Node; the first invoke that may write beside it leaves the
// bytecode of every function it ran. Every import() in it becomes the importer bin.cjs passes, which resolves what
// it names from dist/cli (a vm.Script's own import() fails on Node 20 once its code comes from a cache).
createRequire(import.meta.url)('./adapters/local/code-cache.cjs').produce(
  fileURLToPath(new URL('./dist/cli/invoke.cjs', import.meta.url)),
  true,
);
