/** Builds a function entry for the local target (cached) and loads the bundle into this process. */
import { pathToFileURL } from 'node:url';
import { resolveEntry } from '../adapters/kit/entry.js';
import { buildLocal } from '../adapters/local/build.js';
import type * as LocalHandler from '../adapters/local/handler.js';
import type { ServiceDefinition } from '../runtime/index.js';

/** What a local bundle exports: the user's definition and the local handler. */
export type LocalBundle = typeof LocalHandler & { definition: ServiceDefinition };

export async function loadFunction(
  entry: string,
  env: Record<string, string | undefined>,
  sourceMaps = false,
): Promise<LocalBundle> {
  const built = await buildLocal(resolveEntry(entry), { env });
  // Node parses a module's source map when it loads it: ~5 ms of a one-shot start. Only when asked.
  if (sourceMaps) process.setSourceMapsEnabled(true);
  return (await import(pathToFileURL(built.file).href)) as LocalBundle;
}
