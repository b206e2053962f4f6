/**
 * Build-time only: bundles a function entry for AWS Lambda (Node.js 22 runtime) with the Lambda handler as the
 * bundle's entry, and zips it as a deployment package. The bundle carries the runtime plugins the function's
 * environment selects, with their packages (Lambda has no node_modules to fall back on), except the AWS SDK,
 * which the runtime provides.
 */
import { join, relative } from 'node:path';
import type { Env } from '../../runtime/core/config.js';
import { UserError } from '../../runtime/core/errors.js';
import { Router, type ServiceDefinition } from '../../runtime/core/router.js';
import { BUILD_CONSTANTS } from '../../runtime/core/build-constants.js';
import { STREAM_METADATA, streamsRequest, type StreamKind } from '../../runtime/core/stream.js';
import { streamsReplies } from './stream.js';
import { loadDefinition } from '../kit/definition.js';
import { withoutUnusedCode } from '../kit/unused.js';
import { bundleNode } from '../kit/node.js';
import { source } from '../kit/package-root.js';

export interface LambdaBuildOptions {
  /** Where `index.mjs` and `function.zip` are written. */
  outdir: string;
  /** Default true: Lambda parses the bundle at every cold start; the source map beside it maps stack traces. */
  minify?: boolean;
  /** The environment the function will run with (default: none, the embedded default): it decides which plugins the bundle carries. */
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
 * `<outdir>/function.zip` with its source map: ESM for Node 22, `@aws-sdk/*` left to the runtime that provides them.
 * @example
 * const { artifacts } = await buildLambda(resolveEntry('examples/helloworld'), { outdir: 'dist/helloworld' });
 * // aws lambda create-function --zip-file fileb://dist/helloworld/function.zip --handler index.handler --runtime nodejs22.x ...
 */
export async function buildLambda(file: string, options: LambdaBuildOptions): Promise<LambdaBuildResult> {
  const started = Date.now();
  // A module that cannot be loaded here (it needs its platform to load) is not checked: its init reports it on Lambda.
  const definition = await loadDefinition(file, options.env ?? {}).catch(() => undefined);
  if (definition) refuseRequestStreams(definition);
  // A function with a server stream gets the streaming handler (stream.ts); the others do not carry it. One whose
  // definition could not be read here gets it too: it decides when it runs.
  const streaming = !definition || streamsReplies(definition);
  const [module, factory] = streaming ? ['stream.ts', 'createStreamingHandler'] : ['handler.ts', 'createHandler'];
  const contents = [
    `import * as mod from ${JSON.stringify(file)};`,
    `import { asDefinition } from ${JSON.stringify(source('runtime/core/function.ts'))};`,
    `import { ${factory} } from ${JSON.stringify(source(`adapters/lambda/${module}`))};`,
    `export const handler = ${factory}(asDefinition(mod.default, ${JSON.stringify(relative(process.cwd(), file) || file)}));`,
  ].join('\n');
  // One file (see kit/node.ts), and its source map beside it in the package: with NODE_OPTIONS=--enable-source-maps
  // in the function's environment (deploy.ts sets it), Node maps stack traces to the sources, AWS's documented way.
  const built = await withoutUnusedCode(definition, (define) =>
    bundleNode({
      entry: file,
      outdir: options.outdir,
      contents,
      target: 'node22',
      minify: options.minify ?? true,
      sourcemap: true,
      external: ['@aws-sdk/*'],
      // Lambda invokes the function: it never listens nor subscribes, so the bundle carries no HTTP listener.
      define: { ...define, [BUILD_CONSTANTS.noListener]: 'true' },
      plugins: { platform: 'node', env: options.env ?? {}, packages: 'bundle' },
    }),
  );
  const [{ readFile, writeFile }, { zip }] = await Promise.all([import('node:fs/promises'), import('./zip.js')]);
  const [code, map] = await Promise.all([readFile(built.file), readFile(`${built.file}.map`)]);
  const archive = zip([
    { name: 'index.mjs', data: code },
    { name: 'index.mjs.map', data: map },
  ]);
  const zipFile = join(options.outdir, 'function.zip');
  await writeFile(zipFile, archive);
  return {
    file: built.file,
    size: code.byteLength,
    ms: Date.now() - started,
    artifacts: [{ file: zipFile, size: archive.byteLength }],
  };
}

/**
 * Lambda has no request streaming (InvokeWithResponseStream and a Function URL in RESPONSE_STREAM mode stream the
 * reply only): a client or bidi stream endpoint cannot be served there, so its build fails naming it.
 */
export function refuseRequestStreams(definition: ServiceDefinition): void {
  for (const { name, metadata } of new Router(definition).endpoints()) {
    const kind = metadata[STREAM_METADATA] as StreamKind | undefined;
    if (streamsRequest(kind))
      throw new UserError(
        `${name} is a ${kind} stream, and Lambda has no request streaming (only replies stream there): serve it with micro-fn serve, run, or the cloudflare or deno target, or make it a server stream`,
      );
  }
}
