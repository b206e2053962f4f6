/**
 * `micro-fn serve --watch`: rebuilds a deployed function when a file in its folder changes, and redeploys it
 * (the version swap keeps invocations in flight).
 */
import { dirname, join } from 'node:path';
import { buildLocal } from '../adapters/local/build.js';
import { FolderWatcher } from './folder-watch.js';

export interface Rebuilt {
  bundle: string;
  ms: number;
}

export class EntryWatcher {
  readonly #watchers = new Map<string, FolderWatcher>();
  readonly #home: string;

  constructor(home: string) {
    this.#home = home;
  }

  /** Watches the folder of `entry` (once per entry); `onBuilt` receives every successful rebuild. */
  watch(entry: string, onBuilt: (rebuilt: Rebuilt) => Promise<void>, onError: (err: Error) => void): void {
    if (this.#watchers.has(entry)) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let running = Promise.resolve();
    const rebuild = () => {
      running = running.then(async () => {
        try {
          const built = await buildLocal(entry, {
            outdir: join(this.#home, 'functions', `${Date.now().toString(36)}-${process.pid}`),
          });
          await onBuilt({ bundle: built.file, ms: built.ms });
        } catch (err) {
          onError(err as Error);
        }
      });
    };
    // By folder, not by file: an editor's atomic save (temporary file renamed over the original) is seen every time.
    const watcher = new FolderWatcher(
      dirname(entry),
      () => {
        clearTimeout(timer);
        timer = setTimeout(rebuild, 100); // editors write a file in several steps
      },
      onError,
    );
    this.#watchers.set(entry, watcher);
  }

  unwatch(entry: string): void {
    this.#watchers.get(entry)?.close();
    this.#watchers.delete(entry);
  }

  close(): void {
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }
}
