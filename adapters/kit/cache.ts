/**
 * Bundles cached under MICRO_FN_HOME/cache: a rebuild happens only when an input file changed. A cache hit is on
 * every `micro-fn invoke`'s start-up path, so it costs a few `stat` calls (Date.now, sync fs, no node:crypto).
 * A new build goes to a fresh folder and is published by renaming the manifest, so concurrent builds and running
 * invocations never see a half-written bundle. Build-time only.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Env } from '../../runtime/core/config.js';

export interface CachedBuild {
  /** Absolute path of the bundle. */
  file: string;
  /** Bytes of JavaScript written, source maps excluded. */
  size: number;
  /** True when an up-to-date cached bundle was used. */
  cached: boolean;
  /** Milliseconds spent. */
  ms: number;
}

/** What a build reports to the cache: its bundle, its size, and every input file. */
export interface Built {
  file: string;
  size: number;
  inputs: string[];
}

interface Manifest {
  file: string;
  size: number;
  inputs: (readonly [string, number, number])[];
}

/**
 * The bundle `build` makes into a folder of its own, reused while none of its inputs changed. `key` names what is
 * built (the entry, the package root, the kind of bundle); `env` says where MICRO_FN_HOME is.
 */
export async function cached(
  kind: string,
  key: string,
  env: Env,
  build: (outdir: string) => Promise<Built>,
): Promise<CachedBuild> {
  const started = Date.now();
  const dir = join(env.MICRO_FN_HOME || join(homedir(), '.micro-fn'), 'cache', kind, fnv1a(key));
  const manifestPath = join(dir, 'manifest.json');
  const hit = readManifest(manifestPath);
  if (hit) return { file: hit.file, size: hit.size, cached: true, ms: Date.now() - started };
  // One build per bundle in a process: a second caller (e.g. a deploy that loads the definition while the build it
  // runs beside loads it too) shares the first one's.
  let running = building.get(dir);
  if (!running) {
    running = rebuild(dir, manifestPath, build).finally(() => building.delete(dir));
    building.set(dir, running);
  }
  const { file, size } = await running;
  return { file, size, cached: false, ms: Date.now() - started };
}

/** The builds in progress in this process, by cache folder. */
const building = new Map<string, Promise<{ file: string; size: number }>>();
/** Tells apart builds this process starts in the same millisecond. */
let builds = 0;

/** Builds into a folder of its own and publishes it by renaming its manifest over the old one. */
async function rebuild(
  dir: string,
  manifestPath: string,
  build: (outdir: string) => Promise<Built>,
): Promise<{ file: string; size: number }> {
  const { rename, stat, writeFile } = await import('node:fs/promises');
  const name = `${Date.now().toString(36)}-${process.pid}-${++builds}`;
  const { file, size, inputs } = await build(join(dir, name));
  const stamped = await Promise.all(
    inputs.map(async (input) => {
      const s = await stat(input);
      return [input, s.mtimeMs, s.size] as const;
    }),
  );
  const tmp = `${manifestPath}.${name}`;
  await writeFile(tmp, JSON.stringify({ file, size, inputs: stamped } satisfies Manifest));
  await rename(tmp, manifestPath);
  await pruneBuilds(dir, name);
  return { file, size };
}

/** 32-bit FNV-1a of a string, as 8 hex digits: a cache key, not a security measure. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The manifest, when every input is unchanged since the build. */
function readManifest(path: string): Manifest | undefined {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  for (const [input, mtime, size] of manifest.inputs) {
    try {
      const s = statSync(input);
      if (s.mtimeMs !== mtime || s.size !== size) return undefined;
    } catch {
      return undefined;
    }
  }
  return existsSync(manifest.file) ? manifest : undefined;
}

/** Removes older builds after a minute (an invocation that is starting may still be reading one). */
async function pruneBuilds(dir: string, keep: string): Promise<void> {
  const { readdir, rm, stat } = await import('node:fs/promises');
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [])) {
    if (name === keep || name.startsWith('manifest.json')) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (s?.isDirectory() && now - s.mtimeMs > 60_000) await rm(path, { recursive: true, force: true });
  }
}
