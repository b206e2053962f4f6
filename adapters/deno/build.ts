/**
 * Build-time only: bundles a function entry as one ES module for Deno (`deno`/`worker`/`browser` conditions, no
 * Node built-ins) whose default export `deno serve` runs. It carries the runtime plugins the function's
 * configuration selects (NATS over WebSocket, say) and nothing else.
 */
import { relative } from 'node:path';
import type { Env } from '../../runtime/core/config.js';
import { BUILD_CONSTANTS } from '../../runtime/core/build-constants.js';
import { loadDefinition } from '../kit/definition.js';
import { source } from '../kit/package-root.js';
import { withoutUnusedCode } from '../kit/unused.js';
import { bundleWeb, type WebBundle } from '../kit/web.js';

export { MAIN_MODULE } from '../kit/web.js';

export interface DenoBuildOptions {
  outdir: string;
  /** Default true: the platform compiles the whole bundle at every cold start. */
  minify?: boolean;
  /** The function's configuration: the plugins it selects are bundled, nothing else. Default: none. */
  env?: Env;
}

export type DenoBuild = WebBundle;

/**
 * Bundles `file` (a resolved entry) into `<outdir>/index.mjs`, for `deno serve`.
 * @example
 * const built = await buildDeno('/app/examples/helloworld/index.ts', { outdir: 'dist/helloworld', minify: true });
 * // deno serve --allow-env='MICRO_*' dist/helloworld/index.mjs
 */
export async function buildDeno(file: string, options: DenoBuildOptions): Promise<DenoBuild> {
  const contents = [
    `import * as mod from ${JSON.stringify(file)};`,
    `import { createServe } from ${JSON.stringify(source('adapters/deno/handler.ts'))};`,
    `export default createServe(mod.default, ${JSON.stringify(relative(process.cwd(), file) || file)});`,
  ].join('\n');
  const { outdir, minify = true, env = {} } = options;
  // A module that cannot be loaded in Node (it needs Deno) keeps the stream machinery: it decides when it runs.
  const definition = await loadDefinition(file, env).catch(() => undefined);
  return withoutUnusedCode(definition, (define) =>
    bundleWeb({
      entry: file,
      contents,
      outdir,
      minify,
      env,
      conditions: ['deno'],
      platformName: 'Deno',
      // `deno serve` hands the module its requests: it never listens nor subscribes.
      define: { ...define, [BUILD_CONSTANTS.noListener]: 'true' },
    }),
  );
}
