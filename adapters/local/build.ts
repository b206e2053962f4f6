/**
 * Build-time only: bundles a function entry for Node (ESM, source maps) with the local handler inside.
 * Bundles are cached under MICRO_FN_HOME: a rebuild happens only when an input file changed.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';
import { UserError } from '../../runtime/core/errors.js';

export interface BuildOptions {
  /** Where to write the bundle; default: a cache folder under MICRO_FN_HOME. */
  outdir?: string;
  minify?: boolean;
  env?: Readonly<Record<string, string | undefined>>;
}

export interface BuildResult {
  /** Absolute path of the bundle (`index.mjs`). */
  file: string;
  /** Bytes of the bundle, source map excluded. */
  size: number;
  /** True when an up-to-date cached bundle was used. */
  cached: boolean;
  /** Milliseconds spent. */
  ms: number;
}

const ENTRY_FILES = ['index.ts', 'index.mts', 'index.js', 'index.mjs'];

/** A `.ts`/`.js` file, or a folder with an index file, as an absolute file path. Throws a one-line error. */
export function resolveEntry(entry: string, cwd = process.cwd()): string {
  const path = resolve(cwd, entry);
  let info;
  try {
    info = statSync(path);
  } catch {
    throw new UserError(`${entry}: no such file or folder`);
  }
  if (info.isFile()) return path;
  for (const name of ENTRY_FILES) if (existsSync(join(path, name))) return join(path, name);
  throw new UserError(`${entry} is a folder without ${ENTRY_FILES.join(', ')}`);
}


/** The micro-fn package root this code belongs to (source checkout or installed package). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'runtime', 'core'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the micro-fn package root');
    dir = up;
  }
}

/** Maps `micro-fn` and `micro-fn/<sub>` to this package's TypeScript sources, so a bundle runs this exact runtime. */
export function selfPlugin(root = packageRoot()): Plugin {
  return {
    name: 'micro-fn-self',
    setup(build) {
      let exportsMap: Record<string, { source?: string } | string> | undefined;
      build.onResolve({ filter: /^micro-fn(\/.*)?$/ }, async (args) => {
        exportsMap ??= JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).exports;
        const sub = '.' + args.path.slice('micro-fn'.length);
        const target = exportsMap?.[sub];
        const source = typeof target === 'object' ? target.source : undefined;
        if (!source) return { errors: [{ text: `micro-fn has no export "${sub}"` }] };
        return { path: join(root, source) };
      });
    },
  };
}

/**
 * Bundles `entry` (a resolved file) with the local handler into `options.outdir`, or into the cache, where an
 * up-to-date bundle is reused. Cache entries are written under a fresh folder and published by renaming a
 * manifest file (atomic), so concurrent builds and running invocations never see a half-written bundle.
 */
export async function buildLocal(entry: string, options: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const root = packageRoot();
  const env = options.env ?? process.env;
  if (options.outdir) {
    const file = join(resolve(options.outdir), 'index.mjs');
    await bundle(entry, file, root, options.minify);
    return { file, size: (await stat(file)).size, cached: false, ms: performance.now() - started };
  }
  const key = createHash('sha256').update(`${entry}\0${root}\0${options.minify ? 1 : 0}`).digest('hex').slice(0, 20);
  const dir = join(env.MICRO_FN_HOME || join(homedir(), '.micro-fn'), 'cache', 'local', key);
  const manifestPath = join(dir, 'manifest.json');
  const cached = await readManifest(manifestPath);
  if (cached) return { file: cached.file, size: (await stat(cached.file)).size, cached: true, ms: performance.now() - started };

  const build = `${Date.now().toString(36)}-${process.pid}`;
  const file = join(dir, build, 'index.mjs');
  const inputs = await bundle(entry, file, root, options.minify);
  const tmp = `${manifestPath}.${build}`;
  await writeFile(tmp, JSON.stringify({ file, inputs } satisfies Manifest));
  await rename(tmp, manifestPath);
  await pruneBuilds(dir, build);
  return { file, size: (await stat(file)).size, cached: false, ms: performance.now() - started };
}

interface Manifest {
  file: string;
  inputs: (readonly [string, number, number])[];
}

async function bundle(entry: string, outfile: string, root: string, minify = false): Promise<Manifest['inputs']> {
  const esbuild = await import('esbuild');
  const handler = join(root, 'adapters', 'local', 'handler.ts');
  const contents = [
    `import * as mod from ${JSON.stringify(entry)};`,
    `import { asDefinition } from ${JSON.stringify(handler)};`,
    `export const definition = asDefinition(mod.default, ${JSON.stringify(relative(process.cwd(), entry) || entry)});`,
    `export * from ${JSON.stringify(handler)};`,
  ].join('\n');
  let result;
  try {
    result = await esbuild.build({
      stdin: { contents, resolveDir: dirname(entry), sourcefile: '<micro-fn entry>', loader: 'js' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      sourcemap: 'linked',
      minify,
      outfile,
      metafile: true,
      logLevel: 'silent',
      plugins: [selfPlugin(root)],
      // Bundled CommonJS dependencies may call require(); ESM has none, so give them one.
      banner: { js: "import { createRequire as __microFnRequire } from 'node:module'; const require = __microFnRequire(import.meta.url);" },
    });
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors;
    if (errors?.length) {
      const first = errors[0]!;
      throw new UserError(`build failed: ${first.location ? `${first.location.file}:${first.location.line}: ` : ''}${first.text}`);
    }
    throw err;
  }
  return Promise.all(
    Object.keys(result.metafile.inputs)
      .filter((p) => !p.endsWith('<micro-fn entry>'))
      .map(async (p) => {
        const abs = resolve(p);
        const s = await stat(abs);
        return [abs, s.mtimeMs, s.size] as const;
      }),
  );
}

/** The manifest, when every input is unchanged since the build. */
async function readManifest(path: string): Promise<Manifest | undefined> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
  for (const [input, mtime, size] of manifest.inputs) {
    try {
      const s = statSync(input);
      if (s.mtimeMs !== mtime || s.size !== size) return undefined;
    } catch {
      return undefined;
    }
  }
  return existsSync(manifest.file) ? manifest : undefined;
}

/** Removes older builds after a minute (an invocation that is starting may still be reading one). */
async function pruneBuilds(dir: string, keep: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [])) {
    if (name === keep || name.startsWith('manifest.json')) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (s?.isDirectory() && now - s.mtimeMs > 60_000) await rm(path, { recursive: true, force: true });
  }
}
