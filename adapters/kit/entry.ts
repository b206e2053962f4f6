/** A function's entry as the CLI names it: a file, or a folder with an index file. Build-time only. */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../../runtime/core/errors.js';

const ENTRY_FILES = ['index.ts', 'index.mts', 'index.js', 'index.mjs'];

/** A `.ts`/`.js` file, or a folder with an index file, as an absolute file path. Throws a one-line error. */
export function resolveEntry(entry: string, cwd = process.cwd()): string {
  const path = resolve(cwd, entry);
  let info;
  try {
    info = statSync(path);
  } catch {
    throw new UserError(`${entry}: no such file or folder`);
  }
  if (info.isFile()) return path;
  for (const name of ENTRY_FILES) if (existsSync(join(path, name))) return join(path, name);
  throw new UserError(`${entry} is a folder without ${ENTRY_FILES.join(', ')}`);
}

/** A short name for an entry file: its folder's for an index file (`examples/helloworld`), else the file's own. */
export function entryName(file: string): string {
  return basename(file).startsWith('index.') ? basename(dirname(file)) : basename(file).replace(/\.[cm]?[jt]s$/, '');
}
