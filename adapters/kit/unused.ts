/**
 * What a function's bundle leaves out because the function never uses it (runtime/core/build-constants.ts): the
 * stream machinery when it neither serves nor calls a stream, the store when it never touches `ctx.store`, locks when
 * it never touches `ctx.sync`, config when it never touches `ctx.config`.
 * Build-time only.
 */
import { readFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { BUILD_CONSTANTS } from '../../runtime/core/build-constants.js';
import { Router, type ServiceDefinition } from '../../runtime/core/router.js';
import { STREAM_METADATA } from '../../runtime/core/stream.js';
import { packageRoot } from './package-root.js';

interface Optional {
  /** The build constant that leaves it out. */
  constant: string;
  /** True when the definition itself needs it. */
  served(definition: ServiceDefinition): boolean;
  /** Matches a use of it in a source file (a false match only costs bytes; a missed one, a clear error). */
  used: RegExp;
}

const OPTIONAL: Optional[] = [
  // `client.stream(...)`, `.stream<T>(...)`.
  { constant: BUILD_CONSTANTS.noStreams, served: servesStreams, used: /\.stream\s*[<(]/ },
  // `ctx.store`, or `store` destructured from the context: `({ store }) =>`, `{ store: kv, client }`.
  { constant: BUILD_CONSTANTS.noStore, served: () => false, used: /\.store\b|[{,]\s*store\s*[,}:]/ },
  // `ctx.sync`, or `sync` destructured from the context.
  { constant: BUILD_CONSTANTS.noSync, served: () => false, used: /\.sync\b|[{,]\s*sync\s*[,}:]/ },
  // `ctx.config`, or `config` destructured from the context.
  { constant: BUILD_CONSTANTS.noConfig, served: () => false, used: /\.config\b|[{,]\s*config\s*[,}:]/ },
];

/**
 * Builds a bundle without the code its function does not use: its definition (read at build time; `undefined`
 * when it could not be, and then nothing is left out) and its own sources (the bundle's inputs outside micro-fn's
 * runtime and node_modules) tell. `build` gets the constants to define; it runs once, or twice when the first
 * bundle's sources turn out to use something it left out.
 */
export async function withoutUnusedCode<T extends { inputs: string[] }>(
  definition: ServiceDefinition | undefined,
  build: (define: Record<string, string>) => Promise<T>,
): Promise<T> {
  if (!definition) return build({});
  const left = OPTIONAL.filter((o) => !o.served(definition));
  if (left.length === 0) return build({});
  const built = await build(defines(left));
  const sources = ownSources(built.inputs).map((file) => readFileSync(file, 'utf8'));
  const unused = left.filter((o) => !sources.some((text) => o.used.test(text)));
  return unused.length === left.length ? built : build(defines(unused));
}

/** True when one of the definition's endpoints streams (either way). */
export function servesStreams(definition: ServiceDefinition): boolean {
  return new Router(definition).endpoints().some((e) => e.metadata[STREAM_METADATA] !== undefined);
}

function defines(left: Optional[]): Record<string, string> {
  return Object.fromEntries(left.map((o) => [o.constant, 'true']));
}

/** The function's own source files: not micro-fn's runtime, not a package's. */
function ownSources(inputs: string[], root = packageRoot()): string[] {
  const runtime = [join(root, 'runtime') + sep, join(root, 'adapters') + sep];
  return inputs.filter(
    (file) => !runtime.some((dir) => file.startsWith(dir)) && !file.includes(`${sep}node_modules${sep}`),
  );
}
