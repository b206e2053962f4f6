/** Builds a function entry for the local target (cached) and loads the bundle into this process. */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { resolveEntry } from '../adapters/kit/entry.js';
import { buildLocal } from '../adapters/local/build.js';
import type * as CodeCache from '../adapters/local/code-cache.cjs';
import { source } from '../adapters/kit/package-root.js';
import type * as LocalHandler from '../adapters/local/handler.js';
import type { ServiceDefinition } from '../runtime/index.js';
import { installStackMapping } from '../serve/source-map.js';

/** What a local bundle exports: the user's definition and the local handler. */
export type LocalBundle = typeof LocalHandler & { definition: ServiceDefinition };

/** Builds `entry` (or reuses its cached bundle) and imports it; `sourceMaps`: stacks name the sources. */
export async function loadFunction(
  entry: string,
  env: Record<string, string | undefined>,
  sourceMaps = true,
): Promise<LocalBundle> {
  const built = await buildLocal(resolveEntry(entry), { env });
  // Not process.setSourceMapsEnabled: Node would read and parse the map as the bundle loads, a cost on every start.
  // Mapped when a stack is formatted instead, the map read then.
  if (sourceMaps) installStackMapping();
  // Its script with the V8 code cache when the build wrote them (adapters/local/code-cache.cjs), else the module.
  const codeCache = createRequire(import.meta.url)(source('adapters/local/code-cache.cjs')) as typeof CodeCache;
  const loaded = codeCache.loadBeside(built.file);
  return (loaded?.exports ?? (await import(pathToFileURL(built.file).href))) as LocalBundle;
}
