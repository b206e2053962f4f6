/**
 * Build-time only: bundles a function entry as a Cloudflare module worker (ES modules, `workerd`/`worker`/`browser`
 * conditions, no Node built-ins) with the Workers handler as its main module. It carries the runtime plugins the
 * function's environment selects (NATS over WebSocket, say) in chunks loaded only when used.
 */
import { relative } from 'node:path';
import type { Env } from '../../runtime/core/config.js';
import { BUILD_CONSTANTS } from '../../runtime/core/build-constants.js';
import { loadDefinition } from '../kit/definition.js';
import { source } from '../kit/package-root.js';
import { withoutUnusedCode } from '../kit/unused.js';
import { bundleWeb, type WebBundle } from '../kit/web.js';

export { MAIN_MODULE } from '../kit/web.js';

export interface CloudflareBuildOptions {
  outdir: string;
  /** Default true: the platform compiles the whole bundle at every cold start. */
  minify?: boolean;
  /**
   * The Worker's configuration (its vars): the plugins it selects are bundled, nothing else. Default: none (HTTP
   * calls by address only). Without NATS the upload is ~200 KB smaller and workerd starts the Worker ~15 ms sooner (it
   * compiles every uploaded module at start).
   */
  env?: Env;
}

export type CloudflareBuild = WebBundle;

/**
 * Bundles `file` (a resolved entry) into `options.outdir` as a module worker. What a Worker loads at start (the
 * handler, the runtime core, the function) is `startSize`.
 * @example
 * const built = await buildCloudflare('/app/examples/helloworld/index.ts', { outdir: 'dist/helloworld', minify: true });
 * console.log(built.file, built.startSize); // /app/dist/helloworld/index.mjs 27532
 */
export async function buildCloudflare(file: string, options: CloudflareBuildOptions): Promise<CloudflareBuild> {
  const contents = [
    `import * as mod from ${JSON.stringify(file)};`,
    `import { createWorker } from ${JSON.stringify(source('adapters/cloudflare/handler.ts'))};`,
    `export default createWorker(mod.default, ${JSON.stringify(relative(process.cwd(), file) || file)});`,
  ].join('\n');
  // A module that cannot be loaded in Node (it needs workerd) keeps the stream machinery: it decides when it runs.
  const definition = await loadDefinition(file, options.env ?? {}).catch(() => undefined);
  return withoutUnusedCode(definition, (define) =>
    bundleWeb({
      entry: file,
      contents,
      outdir: options.outdir,
      minify: options.minify ?? true,
      env: options.env ?? {},
      conditions: ['workerd'],
      platformName: 'Workers',
      // index.mjs.map beside it: uploaded with it, Cloudflare maps the Worker's stack traces after it runs.
      sourcemap: true,
      // The platform hands the Worker its invocations: it never listens nor subscribes.
      define: { ...define, [BUILD_CONSTANTS.noListener]: 'true' },
    }),
  );
}
