/**
 * esbuild, set up the way every target bundles: micro-fn mapped to this package's sources, CommonJS given a
 * `require` only when the bundle holds some, build errors as one line. esbuild itself is imported only when a
 * build runs, so commands that build nothing start without it. Build-time only.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildOptions, Metafile, Plugin } from 'esbuild';
import { UserError } from '../../runtime/core/errors.js';
import { packageRoot } from './package-root.js';

/** Maps `micro-fn` and `micro-fn/<sub>` to this package's TypeScript sources, so a bundle runs this exact runtime. */
export function selfPlugin(root = packageRoot()): Plugin {
  return {
    name: 'micro-fn-self',
    setup(build) {
      let exportsMap: Record<string, { source?: string } | string> | undefined;
      build.onResolve({ filter: /^micro-fn(\/.*)?$/ }, (args) => {
        exportsMap ??= JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).exports;
        const sub = '.' + args.path.slice('micro-fn'.length);
        const source = exportSource(exportsMap ?? {}, sub);
        if (!source || !existsSync(join(root, source)))
          return { errors: [{ text: `micro-fn has no export "${sub}"` }] };
        return { path: join(root, source) };
      });
    },
  };
}

/** The `source` file of export `sub` (`./nats`, `./adapters/deno`), through a pattern export (`./adapters/*`) too. */
function exportSource(exportsMap: Record<string, { source?: string } | string>, sub: string): string | undefined {
  const exact = exportsMap[sub];
  if (typeof exact === 'object') return exact.source;
  for (const [key, target] of Object.entries(exportsMap)) {
    if (!key.includes('*') || typeof target !== 'object' || !target.source) continue;
    const [before = '', after = ''] = key.split('*');
    if (sub.startsWith(before) && sub.endsWith(after) && sub.length > before.length + after.length) {
      const match = sub.slice(before.length, sub.length - after.length);
      if (!match.includes('/')) return target.source.replace('*', match);
    }
  }
  return undefined;
}

/** An esbuild failure as a one-line UserError naming the first error's file and line; anything else as it is. */
export function buildFailure(err: unknown): unknown {
  const errors = (err as { errors?: { text: string; location?: { file: string; line: number } | null }[] }).errors;
  if (!errors?.length) return err;
  const first = errors[0]!;
  return new UserError(
    `build failed: ${first.location ? `${first.location.file}:${first.location.line}: ` : ''}${first.text}`,
  );
}

/** Gives bundled CommonJS (a `require()` call) the `require` an ES module bundle lacks. */
export const REQUIRE_BANNER =
  "import { createRequire as __microFnRequire } from 'node:module'; const require = __microFnRequire(import.meta.url);";

/**
 * Runs esbuild's `build` and returns the metafile. For Node, a bundle that holds CommonJS is built again with
 * REQUIRE_BANNER: only then, since importing node:module costs every start of the function a few milliseconds.
 * A build error becomes a one-line UserError naming the file and line.
 */
export async function runEsbuild(options: BuildOptions): Promise<Metafile> {
  const { build } = await import('esbuild');
  try {
    let result = await build({ ...options, metafile: true });
    if (
      options.platform === 'node' &&
      inOutput(result.metafile).some((input) => result.metafile.inputs[input]?.format === 'cjs')
    ) {
      result = await build({ ...options, metafile: true, banner: { js: REQUIRE_BANNER } });
    }
    return result.metafile;
  } catch (err) {
    throw buildFailure(err);
  }
}

/**
 * The inputs that made it into the output. esbuild reads every module an `import()` names, even in code it then
 * drops (a plugin descriptor the bundle does not select): only these count.
 */
export function inOutput(metafile: Metafile): string[] {
  const found = new Set<string>();
  for (const out of Object.values(metafile.outputs))
    for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) if (bytesInOutput > 0) found.add(input);
  return [...found];
}

/** Bytes of JavaScript a build wrote (source maps excluded). */
export function outputBytes(metafile: Metafile): number {
  return Object.entries(metafile.outputs).reduce(
    (sum, [path, out]) => sum + (path.endsWith('.map') ? 0 : out.bytes),
    0,
  );
}

/** A module made of `contents`, as the entry point of a build (resolved from the function's folder). */
export function virtualEntry(name: string, contents: string, resolveDir: string): Plugin {
  return {
    name: `micro-fn-entry-${name}`,
    setup(build) {
      build.onResolve({ filter: new RegExp(`^${name}$`) }, () => ({ path: name, namespace: 'micro-fn-entry' }));
      build.onLoad({ filter: /.*/, namespace: 'micro-fn-entry' }, () => ({ contents, resolveDir, loader: 'js' }));
    },
  };
}
