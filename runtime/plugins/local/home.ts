/**
 * The state folder every local micro-fn process shares: the file registry and the bundle cache live under it.
 * Node only.
 */
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * `MICRO_FN_HOME` when set and not empty (made absolute, so processes started from different folders agree
 * on a relative value only if they share a working folder), else `~/.micro-fn`.
 *
 * @example
 * import { microFnHome } from 'micro-fn/local';
 *
 * console.log(microFnHome(process.env)); // e.g. /home/ada/.micro-fn
 */
export function microFnHome(env: Readonly<Record<string, string | undefined>>): string {
  const home = env.MICRO_FN_HOME;
  return home && home.trim() !== '' ? resolve(home) : join(homedir(), '.micro-fn');
}

/**
 * The folders of `home` that stay readable beyond its owner: the registry, which `micro-fn serve` hands to functions
 * running as another user as an open folder (the path to it stays closed: `home` itself is 0700).
 */
const SHARED = new Set(['registry']);

/**
 * Makes `home` (MICRO_FN_HOME) if it is missing, mode 0700, and tightens what an earlier version left open: `home`
 * and every folder in it become 0700 (the registry excepted, see above). `micro-fn serve` calls it as it starts.
 *
 * @example
 * import { ensureHome, microFnHome } from 'micro-fn/local';
 *
 * await ensureHome(microFnHome(process.env));
 */
export async function ensureHome(home: string): Promise<void> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  await chmod(home, 0o700);
  for (const entry of await readdir(home, { withFileTypes: true }))
    if (entry.isDirectory() && !SHARED.has(entry.name)) await chmod(join(home, entry.name), 0o700);
}
