/**
 * The state folder every local micro-fn process shares: the file registry and the bundle cache live under it.
 * Node only.
 */
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
