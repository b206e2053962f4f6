/**
 * serve's state on disk: what is deployed to it (local functions, the local Lambda API's functions), one small JSON
 * record per function in a folder of its own, so a serve started again at the same address deploys them again.
 * Plain files rather than a database: a few records, each written whole. A write goes to a temporary file (0600),
 * is flushed to the disk, renamed over the record and the folder flushed, so a crash leaves the old record or the
 * new one, never half of one. A record that cannot be read or fails its checks is reported and skipped: one bad file
 * never stops serve. Records hold secrets (a function's declared environment): files 0600, folders 0700.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseListenAddress } from '../runtime/plugins/http/address.js';
import { fileName } from './validate.js';

/** The folder of a serve's state: `MICRO_FN_HOME/state/<address>`; none when serve listens on port 0. */
export function stateFolder(home: string, address: string): string | undefined {
  // A serve on port 0 gets another address each time: no later serve is "the same one", so it keeps nothing.
  const { host, port } = parseListenAddress(address);
  if (port === 0) return undefined;
  return join(home, 'state', fileName(`${host}:${port}`, ''));
}

export interface RecordStoreOptions<T> {
  /** The record's checks: returns it typed, or throws an Error that says what is wrong with it. */
  parse(value: unknown): T;
  /** One line on serve's own output: a record skipped, a write that failed. */
  say(line: string): void;
}

/** One record read back, with its key (the name it was written under). */
export interface StoredRecord<T> {
  key: string;
  value: T;
}

/**
 * Records by key in one folder (`<key>.json`), each replaced whole and atomically.
 * @example
 * const store = new RecordStore(join(home, 'state', 'x', 'functions'), { parse: (v) => v as Deployed, say: console.error });
 * await store.write('helloworld', { name: 'helloworld', request });
 * for (const { key, value } of await store.readAll()) console.log(key, value);
 */
export class RecordStore<T> {
  readonly dir: string;
  readonly #options: RecordStoreOptions<T>;
  /** Per key, the write or removal running: the last one asked for is the one left on disk. */
  readonly #chains = new Map<string, Promise<void>>();
  #made: Promise<void> | undefined;

  constructor(dir: string, options: RecordStoreOptions<T>) {
    this.dir = dir;
    this.#options = options;
  }

  /** Replaces the record of `key` with `value`, durably: resolves once it is on the disk. */
  write(key: string, value: T): Promise<void> {
    const text = `${JSON.stringify({ key, value })}\n`;
    return this.#queue(key, () => this.#write(key, text));
  }

  /** Removes the record of `key` (none: nothing to do). */
  remove(key: string): Promise<void> {
    return this.#queue(key, async () => {
      await unlink(this.#file(key)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await this.#syncFolder();
    });
  }

  /**
   * Every record that reads and passes its checks; each other one is reported and skipped (left on disk, where a
   * later write of its key replaces it). Temporary files a crash left are removed.
   */
  async readAll(): Promise<StoredRecord<T>[]> {
    const names = await readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      this.#options.say(`cannot read the records in ${this.dir}: ${err.message}; nothing restored from there`);
      return [] as string[];
    });
    const records: StoredRecord<T>[] = [];
    for (const name of names.sort()) {
      const file = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        await rm(file, { force: true }).catch(() => {});
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const stored = JSON.parse(await readFile(file, 'utf8')) as { key?: unknown; value?: unknown } | null;
        if (typeof stored !== 'object' || stored === null || typeof stored.key !== 'string')
          throw new Error('it is not a record');
        if (fileName(stored.key, '.json') !== name) throw new Error(`it names ${JSON.stringify(stored.key)}`);
        records.push({ key: stored.key, value: this.#options.parse(stored.value) });
      } catch (err) {
        this.#options.say(`skipped the record ${file}: ${(err as Error).message}`);
      }
    }
    return records;
  }

  #file(key: string): string {
    return join(this.dir, fileName(key, '.json'));
  }

  #queue(key: string, step: () => Promise<void>): Promise<void> {
    const next = (this.#chains.get(key) ?? Promise.resolve()).then(step, step);
    const settled = next.catch(() => {});
    this.#chains.set(key, settled);
    void settled.then(() => {
      if (this.#chains.get(key) === settled) this.#chains.delete(key);
    });
    return next;
  }

  async #write(key: string, text: string): Promise<void> {
    const file = this.#file(key);
    for (let attempt = 1; ; attempt++) {
      await (this.#made ??= this.#makeFolder());
      const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        const handle = await open(temp, 'wx', 0o600);
        try {
          await handle.writeFile(text);
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(temp, file);
        break;
      } catch (err) {
        await rm(temp, { force: true }).catch(() => {});
        this.#made = undefined;
        // The folder was removed under serve (rm -r): made again, once.
        if (attempt === 1 && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
    }
    await this.#syncFolder();
  }

  async #makeFolder(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
  }

  /** Makes a rename or an unlink in the folder durable (Linux; elsewhere opening a folder may fail: skipped). */
  async #syncFolder(): Promise<void> {
    const handle = await open(this.dir, 'r').catch(() => undefined);
    if (!handle) return;
    await handle.sync().catch(() => {});
    await handle.close();
  }
}
