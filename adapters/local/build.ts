/**
 * Build-time only: bundles a function entry for Node (ESM, source maps) with the local handler inside.
 * Bundles are cached under MICRO_FN_HOME: a rebuild happens only when an input file changed.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BuildOptions as EsbuildOptions, Metafile, Plugin } from 'esbuild';
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
  /** Bytes of JavaScript written (entry and chunks), source maps excluded. */
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


/** A short name for an entry file: its folder's for an index file (`examples/helloworld`), else the file's own. */
export function entryName(file: string): string {
  return basename(file).startsWith('index.') ? basename(dirname(file)) : basename(file).replace(/\.[cm]?[jt]s$/, '');
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

/**
 * Leaves heavy plugin dependencies (`nats`) out of a local bundle, imported from where this package has them
 * (an absolute path: the bundle runs on this machine). They are loaded only when a plugin connects, and
 * bundling them would make every cold start parse them.
 */
export function localDependenciesPlugin(root = packageRoot()): Plugin {
  const require = createRequire(join(root, 'package.json'));
  return {
    name: 'micro-fn-local-dependencies',
    setup(build) {
      build.onResolve({ filter: /^nats$/ }, (args) => {
        try {
          return { path: pathToFileURL(require.resolve(args.path)).href, external: true };
        } catch {
          return undefined; // not installed beside micro-fn: let esbuild find it from the function's folder
        }
      });
    },
  };
}

/** micro-fn's own copy of the AWS Lambda SDK, as a URL a local bundle can import (loaded only to call a Lambda function). */
function lambdaSdk(root: string): string | undefined {
  try {
    return pathToFileURL(createRequire(join(root, 'package.json')).resolve('@aws-sdk/client-lambda')).href;
  } catch {
    return undefined;
  }
}

/** Maps `micro-fn` and `micro-fn/<sub>` to this package's TypeScript sources, so a bundle runs this exact runtime. */
export function selfPlugin(root = packageRoot()): Plugin {
  return {
    name: 'micro-fn-self',
    setup(build) {
      let exportsMap: Record<string, { source?: string } | string> | undefined;
      build.onResolve({ filter: /^micro-fn(\/.*)?$/ }, (args) => {
        exportsMap ??= JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports;
        const sub = '.' + args.path.slice('micro-fn'.length);
        const target = exportsMap?.[sub];
        const source = typeof target === 'object' ? target.source : undefined;
        if (!source) return { errors: [{ text: `micro-fn has no export "${sub}"` }] };
        return { path: join(root, source) };
      });
    },
  };
}

/** An esbuild failure as a one-line UserError naming the first error's file and line; anything else as it is. */
export function buildFailure(err: unknown): unknown {
  const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors;
  if (!errors?.length) return err;
  const first = errors[0]!;
  return new UserError(`build failed: ${first.location ? `${first.location.file}:${first.location.line}: ` : ''}${first.text}`);
}

/**
 * Bundles `entry` (a resolved file) with the local handler into `options.outdir`, or into the cache, where an
 * up-to-date bundle is reused. Cache entries are written under a fresh folder and published by renaming a
 * manifest file (atomic), so concurrent builds and running invocations never see a half-written bundle.
 */
export async function buildLocal(entry: string, options: BuildOptions = {}): Promise<BuildResult> {
  // Date.now, sync fs and no node:crypto: a cache hit is on every `micro-fn invoke`'s start-up path.
  const started = Date.now();
  const root = packageRoot();
  const env = options.env ?? process.env;
  if (options.outdir) {
    const outdir = resolve(options.outdir);
    const { size } = await bundle(entry, outdir, root, options.minify);
    return { file: join(outdir, 'index.mjs'), size, cached: false, ms: Date.now() - started };
  }
  const key = `${fnv1a(`${entry}\0${root}\0${options.minify ? 1 : 0}`)}`;
  const dir = join(env.MICRO_FN_HOME || join(homedir(), '.micro-fn'), 'cache', 'local', key);
  const manifestPath = join(dir, 'manifest.json');
  const cached = readManifest(manifestPath);
  if (cached) return { file: cached.file, size: cached.size, cached: true, ms: Date.now() - started };

  const { rename, writeFile } = await import('node:fs/promises');
  const build = `${Date.now().toString(36)}-${process.pid}`;
  const outdir = join(dir, build);
  const { inputs, size } = await bundle(entry, outdir, root, options.minify);
  const file = join(outdir, 'index.mjs');
  const tmp = `${manifestPath}.${build}`;
  await writeFile(tmp, JSON.stringify({ file, size, inputs } satisfies Manifest));
  await rename(tmp, manifestPath);
  await pruneBuilds(dir, build);
  return { file, size, cached: false, ms: Date.now() - started };
}

/** 32-bit FNV-1a of a string, as 8 hex digits: a cache key, not a security measure. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

interface Manifest {
  file: string;
  size: number;
  inputs: (readonly [string, number, number])[];
}

/** Gives bundled CommonJS (a `require()` call) the `require` an ES module bundle lacks. */
export const REQUIRE_BANNER = "import { createRequire as __microFnRequire } from 'node:module'; const require = __microFnRequire(import.meta.url);";

/**
 * Runs esbuild's `build` and returns the metafile. When the bundle holds CommonJS it is built again with
 * REQUIRE_BANNER: only then, since importing node:module costs every start of the function a few milliseconds.
 * A build error becomes a one-line UserError naming the file and line.
 */
export async function esbuildWithRequire(options: EsbuildOptions): Promise<Metafile> {
  const { build } = await import('esbuild');
  try {
    let result = await build({ ...options, metafile: true });
    if (Object.values(result.metafile.inputs).some((input) => input.format === 'cjs')) {
      result = await build({ ...options, metafile: true, banner: { js: REQUIRE_BANNER } });
    }
    return result.metafile;
  } catch (err) {
    throw buildFailure(err);
  }
}

/**
 * Bundles into `outdir/index.mjs`. Returns the inputs (for the cache) and the bytes of JavaScript written, source maps excluded.
 */
async function bundle(entry: string, outdir: string, root: string, minify = false): Promise<{ inputs: Manifest['inputs']; size: number }> {
  const { stat } = await import('node:fs/promises');
  const handler = join(root, 'adapters', 'local', 'handler.ts');
  const contents = [
    `import * as mod from ${JSON.stringify(entry)};`,
    `import { asDefinition } from ${JSON.stringify(handler)};`,
    `export const definition = asDefinition(mod.default, ${JSON.stringify(relative(process.cwd(), entry) || entry)});`,
    `export * from ${JSON.stringify(handler)};`,
    // Started by `micro-fn serve`: serve one invocation over IPC.
    `import { serveIpc } from ${JSON.stringify(handler)};`,
    `if (process.env.MICRO_FN_IPC === '1') serveIpc(definition).catch((err) => { console.error(err); process.exit(1); });`,
  ].join('\n');
  const options = {
    stdin: { contents, resolveDir: dirname(entry), sourcefile: '<micro-fn entry>', loader: 'js' as const },
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    target: 'node20',
    sourcemap: 'linked' as const,
    minify,
    // One file: Node loads each ES module file separately (~1 ms each), and esbuild keeps modules reached by
    // dynamic import() lazily initialised inside it; node: built-ins that only some paths need are
    // imported dynamically by the plugins (node:http by the listener, say).
    outfile: join(outdir, 'index.mjs'),
    logLevel: 'silent' as const,
    plugins: [selfPlugin(root), localDependenciesPlugin(root)],
    define: { __MICRO_FN_LAMBDA_SDK__: JSON.stringify(lambdaSdk(root) ?? null) },
  };
  const metafile = await esbuildWithRequire(options);
  const size = Object.entries(metafile.outputs).reduce((sum, [path, out]) => sum + (path.endsWith('.map') ? 0 : out.bytes), 0);
  const inputs = await Promise.all(
    Object.keys(metafile.inputs)
      .filter((p) => !p.endsWith('<micro-fn entry>'))
      .map(async (p) => {
        const abs = resolve(p);
        const s = await stat(abs);
        return [abs, s.mtimeMs, s.size] as const;
      }),
  );
  return { inputs, size };
}

/** The manifest, when every input is unchanged since the build. */
function readManifest(path: string): Manifest | undefined {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
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
  const { readdir, rm, stat } = await import('node:fs/promises');
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [])) {
    if (name === keep || name.startsWith('manifest.json')) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (s?.isDirectory() && now - s.mtimeMs > 60_000) await rm(path, { recursive: true, force: true });
  }
}
