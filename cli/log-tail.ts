/**
 * Reads function log files (serve/logs.ts) for `micro-fn logs`: what they hold, rotated files first, then what is
 * appended, across rotation (a file renamed `.1` is read to its end before its successor, which LogSink makes only
 * once the old one is complete), a serve restart (the file is appended to) and a removed folder (made again).
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** One line, without its newline. Lines start with their ISO 8601 time, so they sort as text. */
export interface Entry {
  text: string;
}

interface Followed {
  path: string;
  fd?: number;
  ino?: number;
  offset: number;
  /** Text after the last newline read: a line still being written. */
  partial: string;
  /** Inodes of the files of this log already read (or being read): a rotated file not among them is read whole. */
  seen: Set<number>;
}

/** The files of the log at `path` that exist, oldest first: its rotated ones (`.N` ... `.1`), then itself. */
export function logFiles(path: string): string[] {
  const base = basename(path);
  let names: string[] = [];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  // Read from the folder rather than probing .1, .2, ...: a rotation renames them one by one, leaving a gap a moment.
  const rotated = names
    .map((n) => (n.startsWith(`${base}.`) ? Number(n.slice(base.length + 1)) : NaN))
    .filter((n) => Number.isInteger(n) && n > 0)
    .sort((a, b) => b - a);
  const files = rotated.map((n) => `${path}.${n}`);
  return names.includes(base) ? [...files, path] : files;
}

const CHUNK = 1024 * 1024;

/** The log of one function (`only`), or of every function in `folder`. */
export class LogTail {
  readonly #folder: string;
  readonly #only: string | undefined;
  readonly #followed = new Map<string, Followed>();

  constructor(folder: string, only?: string) {
    this.#folder = folder;
    this.#only = only;
  }

  /** Every line kept now, in time order; what is appended later, poll() returns. */
  history(): Entry[] {
    const out: Entry[] = [];
    for (const path of this.#bases()) {
      const followed = this.#follow(path);
      for (const file of logFiles(path).filter((f) => f !== path)) {
        const ino = stat(file)?.ino;
        if (ino !== undefined) followed.seen.add(ino);
        out.push(...split(readText(file)));
      }
      out.push(...this.#read(followed));
    }
    return byTime(out);
  }

  /** The lines appended since the last call, in time order. */
  poll(): Entry[] {
    const out: Entry[] = [];
    for (const path of this.#bases()) out.push(...this.#read(this.#followed.get(path) ?? this.#follow(path)));
    return byTime(out);
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
    const followed: Followed = { path, offset: 0, partial: '', seen: new Set() };
    this.#followed.set(path, followed);
    return followed;
  }

  /** What was appended to the followed file; past a rotation or a replacement, the rest of it and then the new one. */
  #read(f: Followed): Entry[] {
    const now = stat(f.path);
    const out = f.fd === undefined ? [] : this.#drain(f);
    if (now && now.ino !== f.ino) {
      // Renamed (rotated) or replaced: its successor is there now, and the old one was complete before it. Several
      // rotations may have passed since the last read: the rotated files newer than the one read are read whole.
      if (f.fd !== undefined) closeSync(f.fd);
      if (f.partial) out.push({ text: f.partial });
      try {
        f.fd = openSync(f.path, 'r');
      } catch {
        f.fd = undefined;
        return out;
      }
      f.ino = fstatSync(f.fd).ino;
      f.offset = 0;
      f.partial = '';
      // Opened first: a file rotated between the stat and the open is among the rotated ones now, read here.
      out.push(...unseen(f));
      out.push(...this.#drain(f));
    }
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

/**
 * The lines of the rotated files of a followed log that were not read yet (rotated since the last read, or since it
 * was first found), oldest first; the file now followed is not among them.
 */
function unseen(f: Followed): Entry[] {
  const out: Entry[] = [];
  const kept = new Set<number>([f.ino!]);
  for (const file of logFiles(f.path).filter((p) => p !== f.path)) {
    const ino = stat(file)?.ino;
    if (ino === undefined) continue;
    kept.add(ino);
    if (!f.seen.has(ino) && ino !== f.ino) out.push(...split(readText(file)));
  }
  f.seen = kept; // what is no longer kept cannot come back
  return out;
}

function stat(path: string): { ino: number } | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return ''; // rotated away meanwhile
  }
}

const split = (text: string): Entry[] =>
  text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => ({ text: line }));

/** Stable: lines of one file keep their order. */
const byTime = (entries: Entry[]): Entry[] =>
  entries.length < 2
    ? entries
    : entries.sort((a, b) =>
        a.text.slice(0, 24) < b.text.slice(0, 24) ? -1 : a.text.slice(0, 24) > b.text.slice(0, 24) ? 1 : 0,
      );
