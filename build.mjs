// Compiles the CLI and the library into dist/ with esbuild, and the library's declarations (.d.ts, the package's
// `types` conditions) into dist/types with tsc. `npm install` and `npm pack` run it (prepare).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as esbuild from 'esbuild';

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

await Promise.all([
  declarations(),
  esbuild.build({ ...common, entryPoints: library, outdir: 'dist', chunkNames: 'chunks/[name]-[hash]' }),
  esbuild.build({
    ...common,
    // launcher: the process `micro-fn serve` starts function processes from (serve/launcher.ts forks it).
    entryPoints: { main: 'cli/main.ts', launcher: 'serve/launcher-process.ts' },
    outdir: 'dist/cli',
    chunkNames: '[name]-[hash]',
    define: { __MICRO_FN_VERSION__: JSON.stringify(pkg.version) },
  }),
]);
