/**
 * What a function's bundle leaves out because the function never uses it (runtime/core/build-constants.ts): the
 * stream machinery when it neither serves nor calls a stream, the store when it never touches `ctx.store`, locks when
 * it never touches `ctx.sync`, config when it never touches `ctx.config`, the client and every plugin it would open
 * when it never calls out, the message path when it has no subscriber.
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

// `ctx.store`, or `store` destructured from the context: `({ store }) =>`, `{ store: kv, client }`.
const STORE = /\.store\b|[{,]\s*store\s*[,}:]/;
// `ctx.sync`, or `sync` destructured from the context.
const SYNC = /\.sync\b|[{,]\s*sync\s*[,}:]/;
// `ctx.config`, or `config` destructured from the context.
const CONFIG = /\.config\b|[{,]\s*config\s*[,}:]/;

// Each use is looked for in the packages the function imports too: one handed `ctx` may use any of it, and a bundle
// that left it out would fail there with an error no rebuild fixes. A package's false match costs bytes only.
const OPTIONAL: Optional[] = [
  // `client.stream(...)`, `.stream<T>(...)`.
  { constant: BUILD_CONSTANTS.noStreams, served: servesStreams, used: /\.stream\s*[<(]/ },
  { constant: BUILD_CONSTANTS.noStore, served: () => false, used: STORE },
  { constant: BUILD_CONSTANTS.noSync, served: () => false, used: SYNC },
  { constant: BUILD_CONSTANTS.noConfig, served: () => false, used: CONFIG },
  // Subscribers are declared in the definition only: nothing in the sources adds one.
  { constant: BUILD_CONSTANTS.noSubscribers, served: (d) => new Router(d).topics.length > 0, used: /(?!)/ },
  // Any word `client`, `publish` or `broker` (`ctx.client.call`, `{ client }`, a helper handed `ctx`), and the store
  // and sync, which run on the client (and `config`: a configuration source may be a plugin the client opens).
  {
    constant: BUILD_CONSTANTS.noClient,
    served: () => false,
    used: new RegExp(`\\b(client|publish|broker)\\b|${STORE.source}|${SYNC.source}|${CONFIG.source}`),
  },
];

/**
 * Builds a bundle without the code its function does not use: its definition (read at build time; `undefined`
 * when it could not be, and then nothing is left out) and its sources (the bundle's inputs outside micro-fn's
 * runtime: its own files, then the packages it imports) tell. `build` gets the constants to define; it runs once, or
 * twice when the first bundle's sources turn out to use something it left out.
 */
export async function withoutUnusedCode<T extends { inputs: string[] }>(
  definition: ServiceDefinition | undefined,
  build: (define: Record<string, string>) => Promise<T>,
): Promise<T> {
  if (!definition) return build({});
  const left = OPTIONAL.filter((o) => !o.served(definition));
  if (left.length === 0) return build(CHECKED);
  const built = await build(defines(left));
  const read = (files: string[]) => files.map((file) => readFileSync(file, 'utf8'));
  const own = read(ownSources(built.inputs));
  let packages: string[] | undefined;
  const unused = left.filter(
    (o) =>
      !own.some((text) => o.used.test(text)) &&
      !(packages ??= read(packageSources(built.inputs))).some((text) => o.used.test(text)),
  );
  return unused.length === left.length ? built : build(defines(unused));
}

/** True when one of the definition's endpoints streams (either way). */
export function servesStreams(definition: ServiceDefinition): boolean {
  return new Router(definition).endpoints().some((e) => e.metadata[STREAM_METADATA] !== undefined);
}

/** What every build of a definition that loaded defines: its shape was checked then. */
const CHECKED = { [BUILD_CONSTANTS.checked]: 'true' };

function defines(left: Optional[]): Record<string, string> {
  return { ...CHECKED, ...Object.fromEntries(left.map((o) => [o.constant, 'true'])) };
}

/** The function's own source files: not micro-fn's runtime, not a package's. */
function ownSources(inputs: string[]): string[] {
  return inputs.filter((file) => !inRuntime(file) && !inPackage(file));
}

/** The source files of the packages the function imports (micro-fn's own plugins' packages among them). */
function packageSources(inputs: string[]): string[] {
  return inputs.filter((file) => !inRuntime(file) && inPackage(file));
}

function inRuntime(file: string, root = packageRoot()): boolean {
  return [join(root, 'runtime') + sep, join(root, 'adapters') + sep].some((dir) => file.startsWith(dir));
}

const inPackage = (file: string) => file.includes(`${sep}node_modules${sep}`);
