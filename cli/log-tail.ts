/**
 * Reads function log files (serve/logs.ts) for `micro-fn logs`: what they hold, rotated files first, then what is
 * appended, across rotation, a serve restart (the file is appended to) and a removed folder (made again).
 *
 * Following a log: the current file is held open. Once its name holds another file (rotated: LogSink renames it only
 * once all of it is on disk), it is read to its end, then the rotated files numbered after it, in order, then the new
 * current file: every line once, in order. A number missing in that run is a file removed (past serve's
 * --log-files) before it was read: `rotatedAway()` says so. The numbers, not inodes, tell files apart: an inode
 * number is reused as soon as a file is removed.
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { rotatedLogs } from '../serve/logs.js';

/** One line, without its newline. Lines start with their ISO 8601 time, so they sort as text. */
export interface Entry {
  text: string;
}

/** Files of a followed log removed by rotation before they could be read. */
export interface RotatedAway {
  /** The log's current file. */
  path: string;
  /** How many rotated files were removed unread. */
  files: number;
}

interface Followed {
  path: string;
  /** The current file, held open: read to its end even after rotation removed its name. */
  fd?: number;
  ino?: number;
  offset: number;
  /** Text after the last newline read: a line still being written. */
  partial: string;
  /** The number the open file gets when rotated (the newest rotated one's + 1 when it was opened). */
  number?: number;
  /** The number of the last file read to its end; undefined before the first read (which reads every kept file). */
  done?: number;
}

/** The files of the log at `path` that exist, oldest first: its rotated ones (`.N`), then itself. */
export function logFiles(path: string): string[] {
  const files = rotatedLogs(path).map((r) => r.path);
  return stat(path) ? [...files, path] : files;
}

const CHUNK = 1024 * 1024;

/** The log of one function (`only`), or of every function in `folder`. */
export class LogTail {
  readonly #folder: string;
  readonly #only: string | undefined;
  readonly #followed = new Map<string, Followed>();
  #away: RotatedAway[] = [];

  constructor(folder: string, only?: string) {
    this.#folder = folder;
    this.#only = only;
  }

  /** Every line kept now, in time order; what is appended later, poll() returns. */
  history(): Entry[] {
    return merge(this.#bases().map((path) => this.#read(this.#followed.get(path) ?? this.#follow(path))));
  }

  /** The lines appended since the last call (or history()), in time order; each function's in the order written. */
  poll(): Entry[] {
    return merge(this.#bases().map((path) => this.#read(this.#followed.get(path) ?? this.#follow(path))));
  }

  /** Rotated files removed before they were read, since the last call. */
  rotatedAway(): RotatedAway[] {
    const away = this.#away;
    this.#away = [];
    return away;
  }

  close(): void {
    for (const f of this.#followed.values()) if (f.fd !== undefined) closeSync(f.fd);
    this.#followed.clear();
  }

  /** The current files of the logs followed: the one asked for, or every `*.log` of the folder. */
  #bases(): string[] {
    if (this.#only) return [this.#only];
    let names: string[] = [];
    try {
      names = readdirSync(this.#folder);
    } catch {
      // no folder yet: no logs yet
    }
    return names.filter((n) => n.endsWith('.log')).map((n) => join(this.#folder, n));
  }

  #follow(path: string): Followed {
    const followed: Followed = { path, offset: 0, partial: '' };
    this.#followed.set(path, followed);
    return followed;
  }

  /** What was appended to the followed file; past a rotation, the rest of it, the files after it, then the new one. */
  #read(f: Followed): Entry[] {
    const out: Entry[] = [];
    if (f.fd !== undefined) {
      // Asked before reading: if the name holds another file now, the open one was complete before that.
      const current = stat(f.path)?.ino === f.ino;
      out.push(...this.#drain(f));
      if (current) return out;
      // Its number now that it is rotated (it is held open: its inode cannot be another file's), else the estimate.
      const rotated = rotatedLogs(f.path).find((r) => stat(r.path)?.ino === f.ino);
      f.done = rotated?.number ?? f.number;
      if (f.partial) out.push({ text: f.partial });
      closeSync(f.fd);
      Object.assign(f, { fd: undefined, ino: undefined, offset: 0, partial: '' });
    }
    // Opened before the folder is listed: a rotation in between shows it among the rotated files, found by inode.
    let fd: number | undefined;
    try {
      fd = openSync(f.path, 'r');
    } catch {
      fd = undefined; // not there (yet): between a rotation's rename and the next line, or no log yet
    }
    const ino = fd === undefined ? undefined : fstatSync(fd).ino;
    const rotated = rotatedLogs(f.path);
    const self = ino === undefined ? undefined : rotated.find((r) => stat(r.path)?.ino === ino);
    const number = self?.number ?? (rotated.at(-1)?.number ?? 0) + 1;
    // Numbers went back (the folder was removed and serve restarted): a new run of files.
    if (f.done !== undefined && number <= f.done) f.done = number - 1;
    let missing = 0;
    for (const r of rotated) {
      if ((f.done !== undefined && r.number <= f.done) || r.number >= number) continue;
      const text = readText(r.path);
      if (text === undefined) continue; // removed since the listing: counted below
      if (f.done !== undefined) missing += r.number - f.done - 1;
      out.push(...split(text));
      f.done = r.number;
    }
    if (fd === undefined) {
      if (missing > 0) this.#away.push({ path: f.path, files: missing });
      return out;
    }
    if (f.done !== undefined) missing += number - f.done - 1;
    if (missing > 0) this.#away.push({ path: f.path, files: missing });
    Object.assign(f, { fd, ino, offset: 0, partial: '', number });
    out.push(...this.#drain(f));
    return out;
  }

  #drain(f: Followed): Entry[] {
    const fd = f.fd!;
    if (fstatSync(fd).size < f.offset) f.offset = 0; // truncated
    const buffer = Buffer.alloc(CHUNK);
    let text = '';
    for (;;) {
      const n = readSync(fd, buffer, 0, CHUNK, f.offset);
      if (n === 0) break;
      f.offset += n;
      text += buffer.toString('utf8', 0, n);
    }
    if (text === '') return [];
    const lines = (f.partial + text).split('\n');
    f.partial = lines.pop()!;
    return lines.map((line) => ({ text: line }));
  }
}

function stat(path: string): { ino: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** A rotated file's text; undefined once rotation removed it. */
function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

const split = (text: string): Entry[] =>
  text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => ({ text: line }));

const key = (e: Entry) => e.text.slice(0, 24);

/** The logs' lines in time order; each log's keep their order (a clock set back never reorders one log). */
function merge(logs: Entry[][]): Entry[] {
  const lists = logs.filter((l) => l.length > 0);
  if (lists.length < 2) return lists[0] ?? [];
  const at = lists.map(() => 0);
  const out: Entry[] = [];
  for (;;) {
    let pick = -1;
    for (let i = 0; i < lists.length; i++)
      if (at[i]! < lists[i]!.length && (pick < 0 || key(lists[i]![at[i]!]!) < key(lists[pick]![at[pick]!]!))) pick = i;
    if (pick < 0) return out;
    out.push(lists[pick]![at[pick]!++]!);
  }
}
