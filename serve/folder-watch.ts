/**
 * Watches a folder and the folders under it by name, one `fs.watch` per folder. Node 20's recursive `fs.watch` on
 * Linux watches each file's inode: after an editor's atomic save (write a temporary file, rename it over the
 * original) it kept watching a file that no longer had a name there, and saw no later change. A folder's own watch
 * reports every name written, renamed in or removed, so atomic saves and a delete + re-create are all seen.
 */
import { readdirSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';

/** Folders never watched (nor their contents): dependencies and version control change without the code. */
const IGNORED = new Set(['node_modules', '.git']);

/** Folders watched at most under one root: a watch is a file descriptor (an inotify watch on Linux). */
const MAX_FOLDERS = 2000;

export class FolderWatcher {
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #onChange: (path: string) => void;
  readonly #onError: (err: Error) => void;
  #full = false;
  #closed = false;

  /** Starts watching `root` and every folder under it; `onChange` gets the path of each name that changed. */
  constructor(root: string, onChange: (path: string) => void, onError: (err: Error) => void) {
    this.#onChange = onChange;
    this.#onError = onError;
    this.#add(root);
  }

  /** How many folders are watched. */
  get size(): number {
    return this.#watchers.size;
  }

  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  /** Watches `dir` and the folders under it (those already watched are left as they are). */
  #add(dir: string): void {
    if (this.#closed || this.#watchers.has(dir)) return;
    if (this.#watchers.size >= MAX_FOLDERS) {
      if (!this.#full)
        this.#onError(
          new Error(`more than ${MAX_FOLDERS} folders under the entry's folder: changes below ${dir} are not watched`),
        );
      this.#full = true;
      return;
    }
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, (event, name) => this.#changed(dir, event, name));
    } catch (err) {
      // Gone already (removed between the event and now), or not a folder: nothing to watch.
      if (isMissing(err)) return;
      return this.#onError(err as Error);
    }
    watcher.on('error', (err) => {
      this.#remove(dir);
      if (!isMissing(err)) this.#onError(err);
    });
    this.#watchers.set(dir, watcher);
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) if (entry.isDirectory() && !IGNORED.has(entry.name)) this.#add(join(dir, entry.name));
  }

  /** Stops watching `dir` and every folder under it. */
  #remove(dir: string): void {
    for (const [path, watcher] of this.#watchers) {
      if (path === dir || path.startsWith(`${dir}/`) || path.startsWith(`${dir}\\`)) {
        watcher.close();
        this.#watchers.delete(path);
      }
    }
  }

  #changed(dir: string, event: string, name: string | Buffer | null): void {
    if (this.#closed) return;
    if (name === null) return this.#onChange(dir);
    const base = String(name);
    if (IGNORED.has(base)) return;
    const path = join(dir, base);
    // A name that appeared or went: a folder made (or renamed in) is watched from now on, one removed is let go.
    if (event === 'rename') {
      let folder = false;
      try {
        folder = statSync(path).isDirectory();
      } catch {
        this.#remove(path);
      }
      if (folder) this.#add(path);
    }
    this.#onChange(path);
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EPERM';
}
