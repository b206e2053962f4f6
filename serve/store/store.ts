/**
 * The embedded store serve keeps durable state in: LMDB, through the `lmdb` package (prebuilt binaries for Linux,
 * macOS and Windows, no compiler). This is the only module that imports it, and only when a store is opened, so
 * no other command and no function's bundle loads it.
 *
 * A store is a folder under MICRO_FN_HOME/store/ (LMDB's `data.mdb` and `lock.mdb`) holding named databases whose
 * keys are numbers, strings or arrays of them, kept in order, and whose values are MessagePack (a Uint8Array stays
 * bytes). Durability: LMDB writes each transaction whole or not at all (a crash never leaves half of one), and
 * every write this module reports done (`durable()`) has been committed and then flushed to the disk (fsync): a
 * SIGKILL of serve, and a crash of the machine, keep it. lmdb-js commits the writes of one event-loop turn as one
 * transaction and flushes while the next commits (`overlappingSync`), so concurrent writers share one flush. A write
 * waits for the flush of its own transaction (`separateFlushed`), not for one of writes made after it.
 */
import { linkSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Database, Key, RootDatabase } from 'lmdb';

export type { Database, Key };

/** An open store. */
export interface Store {
  /** Its folder. */
  readonly path: string;
  /** The database `name` of this store (made on first use). */
  database<V, K extends Key = Key>(name: string): Database<V, K>;
  /**
   * Runs `action` in one write transaction, committed and flushed to disk before it returns (LMDB's own: other
   * processes on the same folder wait for it). Its puts and removes apply whole or not at all: a throw aborts them.
   * Synchronous (it blocks the event loop for the commit): keep `action` small.
   */
  transactionSync<T>(action: () => T): T;
  /**
   * Makes the next read see the latest commit, of any process: lmdb-js keeps one read snapshot until the end of the
   * event-loop turn, so without it a read in the same turn as another process's commit sees the state before it.
   */
  fresh(): void;
  /** Resolves once `write` (a put or remove of this store) is committed and flushed to disk; rejects if it failed. */
  durable(write: Promise<unknown>): Promise<void>;
  /** Waits for the writes issued so far, then closes the store (and gives it up, if it was claimed). */
  close(): Promise<void>;
}

/** Opens (or makes) the store in folder `path`. */
export async function openStore(path: string): Promise<Store> {
  return new LmdbStore(path, await openRoot(path));
}

async function openRoot(path: string): Promise<RootDatabase> {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const { open } = await import('lmdb');
  // Databases: the broker's four, the key-value store's three (serve/store/kv.ts); each named database costs LMDB a slot.
  return open({ path, maxDbs: 32, separateFlushed: true });
}

/**
 * Opens the first of `<dir>/<name>`, `<dir>/<name>-2`, `<dir>/<name>-3`, … that no live process holds, and holds
 * it until closed (or until this process ends: a store whose holder died is taken over). For state that one
 * process owns, such as the messages of serve's broker: a second serve on the same MICRO_FN_HOME gets a store of
 * its own, and a serve started again after a crash gets the first store back.
 */
export async function openOwnStore(dir: string, name: string, tries = 16): Promise<Store> {
  for (let n = 1; n <= tries; n++) {
    const path = join(dir, n === 1 ? name : `${name}-${n}`);
    const release = claim(path);
    if (!release) continue;
    try {
      return new LmdbStore(path, await openRoot(path), release);
    } catch (err) {
      release();
      throw err;
    }
  }
  throw new Error(`the ${tries} stores ${join(dir, name)}[-N] are all held by running processes`);
}

class LmdbStore implements Store {
  readonly path: string;
  readonly #root: RootDatabase;
  readonly #databases = new Map<string, Database>();
  readonly #release: (() => void) | undefined;

  constructor(path: string, root: RootDatabase, release?: () => void) {
    this.path = path;
    this.#root = root;
    this.#release = release;
  }

  database<V, K extends Key = Key>(name: string): Database<V, K> {
    let db = this.#databases.get(name);
    if (!db) this.#databases.set(name, (db = this.#root.openDB({ name })));
    return db as Database<V, K>;
  }

  transactionSync<T>(action: () => T): T {
    return this.#root.transactionSync(action);
  }

  fresh(): void {
    this.#root.resetReadTxn();
  }

  async durable(write: Promise<unknown>): Promise<void> {
    const flushed = (write as Promise<unknown> & { flushed?: Promise<unknown> }).flushed;
    await write;
    await (flushed ?? this.#root.flushed);
  }

  async close(): Promise<void> {
    try {
      await this.#root.flushed;
      await this.#root.close();
    } finally {
      this.#release?.();
    }
  }
}

/**
 * Takes `<path>/owner` for this process, unless a live process holds it; returns how to give it up. The owner file
 * names a process by boot, pid and start time, so neither a reboot nor a reused pid makes a dead holder look alive.
 * It is put in place by link(), which fails when the file exists: two processes never both create it.
 */
function claim(path: string): (() => void) | undefined {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const file = join(path, 'owner');
  const me = identity(process.pid);
  const staged = join(path, `owner.${process.pid}.${Date.now().toString(36)}`);
  writeFileSync(staged, me, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(staged, file);
        return () => {
          if (readOwner(file) === me) rmSync(file, { force: true });
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readOwner(file);
      if (holder === undefined || alive(holder)) return undefined;
      // Its holder is gone (killed, or the machine restarted): take it over.
      try {
        unlinkSync(file);
      } catch {
        // taken over by another process meanwhile: link() says so next
      }
    }
    return undefined;
  } finally {
    rmSync(staged, { force: true });
  }
}

function readOwner(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** `boot:pid:start`, where /proc has them (Linux); `-:pid:-` elsewhere. */
function identity(pid: number): string {
  return `${bootId()}:${pid}:${startTime(pid) ?? '-'}`;
}

function alive(holder: string): boolean {
  const [boot, pidText, start] = holder.split(':');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (boot !== '-' && boot !== bootId()) return false;
  if (start !== undefined && start !== '-') return startTime(pid) === start;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '-';
  }
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks after boot. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) " come the fields from the third on; comm may hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
