/** Where micro-fn's own files are, so a bundle carries the runtime of the CLI that built it. Build-time only. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let found: string | undefined;

/** The micro-fn package root this code belongs to (a source checkout or an installed package). */
export function packageRoot(): string {
  if (found) return found;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'runtime', 'core'))) return (found = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the micro-fn package root');
    dir = up;
  }
}

/** The absolute path of one of micro-fn's source files, e.g. `source('adapters/local/handler.ts')`. */
export function source(path: string): string {
  return join(packageRoot(), ...path.split('/'));
}
