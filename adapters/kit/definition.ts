/**
 * A function's definition, read at build time (its name, endpoints and topics, for a deploy's registration): the
 * entry bundled for Node (cached) and imported into this process, as `micro-fn invoke` loads a function.
 * Build-time only.
 */
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Env, ServiceDefinition } from '../../runtime/core/index.js';
import { cached } from './cache.js';
import { bundleNode } from './node.js';
import { packageRoot, source } from './package-root.js';

/** Loads the definition `entry` (a resolved file) exports by default; a UserError when it exports none. */
export async function loadDefinition(entry: string, env: Env = process.env): Promise<ServiceDefinition> {
  const built = await cached('definition', `${entry}\0${packageRoot()}`, env, (outdir) =>
    bundleNode({
      entry,
      outdir,
      contents: [
        `import * as mod from ${JSON.stringify(entry)};`,
        `import { asDefinition } from ${JSON.stringify(source('runtime/core/function.ts'))};`,
        `export const definition = asDefinition(mod.default, ${JSON.stringify(relative(process.cwd(), entry) || entry)});`,
      ].join('\n'),
      plugins: { platform: 'node', packages: 'external' },
    }),
  );
  return ((await import(pathToFileURL(built.file).href)) as { definition: ServiceDefinition }).definition;
}
