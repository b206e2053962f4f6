/**
 * Build-time only: bundles a function entry for AWS Lambda (Node.js 22 runtime) with the Lambda handler as
 * the bundle's entry, and zips it as a deployment package.
 */
import { dirname, join, relative, resolve } from 'node:path';
import type { Plugin } from 'esbuild';
import type { Env } from '../../runtime/core/config.js';
import { usesNats } from '../../runtime/plugins/resolve.js';
import { esbuildWithRequire, packageRoot, selfPlugin } from '../local/build.js';

export interface LambdaBuildOptions {
  /** Where `index.mjs` and `function.zip` are written. */
  outdir: string;
  minify?: boolean;
  /**
   * The environment the function will run with (default: the builder's): it decides whether the bundle
   * carries the NATS client. See natsPlugin.
   */
  env?: Env;
}

export interface LambdaBuildResult {
  /** Absolute path of the bundle, `index.mjs` (Lambda handler `index.handler`). */
  file: string;
  /** Bytes of the bundle. */
  size: number;
  /** Milliseconds spent. */
  ms: number;
  /** The deployment package, `function.zip`. */
  artifacts: { file: string; size: number }[];
}

/**
 * Bundles `file` (a resolved entry) into `<outdir>/index.mjs`, exporting `handler`, and zips it into
 * `<outdir>/function.zip`: ESM for Node 22, `@aws-sdk/*` left to the runtime that provides them.
 * @example
 * const { artifacts } = await buildLambda(resolveEntry('examples/helloworld'), { outdir: 'dist/helloworld' });
 * // aws lambda create-function --zip-file fileb://dist/helloworld/function.zip --handler index.handler --runtime nodejs22.x ...
 */
export async function buildLambda(file: string, options: LambdaBuildOptions): Promise<LambdaBuildResult> {
  const started = Date.now();
  const root = packageRoot();
  const outdir = resolve(options.outdir);
  const outfile = join(outdir, 'index.mjs');
  const contents = [
    `import * as mod from ${JSON.stringify(file)};`,
    `import { asDefinition } from ${JSON.stringify(join(root, 'adapters', 'local', 'handler.ts'))};`,
    `import { createHandler } from ${JSON.stringify(join(root, 'adapters', 'lambda', 'handler.ts'))};`,
    `export const handler = createHandler(asDefinition(mod.default, ${JSON.stringify(relative(process.cwd(), file) || file)}));`,
  ].join('\n');
  await esbuildWithRequire({
    stdin: { contents, resolveDir: dirname(file), sourcefile: '<micro-fn lambda entry>', loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    // One file (see adapters/local/build.ts). No source map: it would double the package, and Lambda
    // only uses one with NODE_OPTIONS=--enable-source-maps; an unminified bundle reads well in a stack.
    outfile,
    minify: options.minify ?? false,
    external: ['@aws-sdk/*'],
    logLevel: 'silent',
    plugins: [selfPlugin(root), natsPlugin(root, options.env ?? process.env)],
  });
  const [{ readFile, writeFile }, { zip }] = await Promise.all([import('node:fs/promises'), import('./zip.js')]);
  const code = await readFile(outfile);
  const archive = zip([{ name: 'index.mjs', data: code }]);
  const zipFile = join(outdir, 'function.zip');
  await writeFile(zipFile, archive);
  return { file: outfile, size: code.byteLength, ms: Date.now() - started, artifacts: [{ file: zipFile, size: archive.byteLength }] };
}

/**
 * Keeps the NATS client (about 600 KB of CommonJS) out of a bundle whose function cannot use it. The runtime
 * picks plugins from MICRO_* variables when it runs, so every plugin is reachable in the bundle, through
 * `import()`: esbuild inlines those (one file, no splitting), and a helloworld would carry NATS for nothing.
 * So: when `env` chooses a NATS plugin, `nats` is bundled; otherwise the plugins' `import('nats')` gets a
 * module that fails with a message saying how to rebuild. A function's own `import ... from 'nats'` is always
 * bundled. Lambda has no node_modules to fall back on, so leaving it external would only fail less clearly.
 */
export function natsPlugin(root: string, env: Env): Plugin {
  const plugins = join(root, 'runtime', 'plugins') + '/';
  const message =
    'this Lambda bundle was built without the NATS client, since no NATS plugin was chosen when it was built: build or deploy it with MICRO_REGISTRY=nats (or MICRO_BROKER=nats|jetstream, MICRO_TRANSPORT=nats) set';
  return {
    name: 'micro-fn-lambda-nats',
    setup(build) {
      if (usesNats(env)) return;
      build.onResolve({ filter: /^nats$/ }, (args) => (args.importer.startsWith(plugins) ? { path: 'nats', namespace: 'micro-fn-without-nats' } : undefined));
      build.onLoad({ filter: /.*/, namespace: 'micro-fn-without-nats' }, () => ({
        // A MicroError: the client passes it on to the handler as it is, message and all.
        contents: `import { errors } from ${JSON.stringify(join(root, 'runtime', 'core', 'errors.ts'))};\nthrow errors.internal('micro-fn', ${JSON.stringify(message)});`,
        resolveDir: root,
        loader: 'js',
      }));
    },
  };
}
