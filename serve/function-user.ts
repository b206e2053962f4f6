/**
 * The user function processes run as (`micro-fn serve --user`). A function is code serve was asked to run, not code
 * serve trusts: when serve runs as root, its functions run as an unprivileged user, `nobody` unless told otherwise.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { UserError } from '../runtime/core/errors.js';

/** A user to run functions as. */
export interface FunctionUser {
  name: string;
  uid: number;
  gid: number;
}

/** Who functions run as when serve is root and no `--user` is given. */
export const DEFAULT_FUNCTION_USER = 'nobody';

/**
 * The user functions run as: as root, `name` (default `nobody`; `root` only when asked for by name, which returns
 * undefined: no switch); as any other user, serve's own (undefined), and a `name` is a UserError, since only root
 * can start a process as another user. `name` is a user name, or `UID[:GID]`.
 */
export function functionUser(name?: string, uid = process.getuid?.()): FunctionUser | undefined {
  if (uid === undefined) return undefined; // not POSIX
  if (uid !== 0) {
    if (name === undefined) return undefined;
    throw new UserError(
      `--user ${name} needs micro-fn serve to run as root (only root can start processes as another user); without it, functions run as serve's own user`,
    );
  }
  const user = lookup(name ?? DEFAULT_FUNCTION_USER);
  return user.uid === 0 ? undefined : user;
}

function lookup(name: string): FunctionUser {
  const numbers = /^(\d+)(?::(\d+))?$/.exec(name);
  if (numbers) return { name, uid: Number(numbers[1]), gid: Number(numbers[2] ?? numbers[1]) };
  const fields = readTextFile('/etc/passwd')
    .split('\n')
    .map((line) => line.split(':'))
    .find((f) => f[0] === name);
  if (fields) return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
  // Users from elsewhere than /etc/passwd (LDAP, systemd's dynamic users), through NSS.
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: 'pipe' }).trim());
    return { name, uid: id('-u'), gid: id('-g') };
  } catch {
    throw new UserError(
      `no user ${name} on this machine to run functions as: create it, or choose another with micro-fn serve --user NAME`,
    );
  }
}

function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
