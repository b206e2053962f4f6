/**
 * Whether a function's bundle carries the stream machinery (runtime/core/build-constants.ts): only when the function
 * serves a stream or calls one. Build-time only.
 */
import { readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { BUILD_CONSTANTS } from '../../runtime/core/build-constants.js';
import { Router } from '../../runtime/core/router.js';
import type { ServiceDefinition } from '../../runtime/core/router.js';
import { STREAM_METADATA } from '../../runtime/core/stream.js';
import { packageRoot } from './package-root.js';

/** A call of `client.stream(...)` (or any `.stream(` / `.stream<T>(`) in a source file: it may open a stream. */
const STREAM_CALL = /\.stream\s*[<(]/;

/**
 * Builds a bundle without the stream machinery when the function can do without it: its definition (read at build
 * time; `undefined` when it could not be) has no stream endpoint and none of its own sources (the bundle's inputs
 * outside micro-fn's runtime and node_modules) calls `.stream(`. `build` gets the constants to define; it runs once, or twice
 * when the first bundle's sources turn out to call a stream.
 */
export async function withStreamsAsNeeded<T extends { inputs: string[] }>(
  definition: ServiceDefinition | undefined,
  build: (define: Record<string, string>) => Promise<T>,
): Promise<T> {
  if (!definition || servesStreams(definition)) return build({});
  const built = await build({ [BUILD_CONSTANTS.noStreams]: 'true' });
  return callsStreams(built.inputs) ? build({}) : built;
}

/** True when one of the definition's endpoints streams (either way). */
export function servesStreams(definition: ServiceDefinition): boolean {
  return new Router(definition).endpoints().some((e) => e.metadata[STREAM_METADATA] !== undefined);
}

/** True when one of the function's own source files (not micro-fn's runtime, not a package's) calls `.stream(`. */
export function callsStreams(inputs: string[], root = packageRoot()): boolean {
  const runtime = [join(root, 'runtime') + sep, join(root, 'adapters') + sep];
  const own = inputs.filter(
    (file) => !runtime.some((dir) => file.startsWith(dir)) && !file.includes(`${sep}node_modules${sep}`),
  );
  return own.some((file) => STREAM_CALL.test(readFileSync(file, 'utf8')));
}
