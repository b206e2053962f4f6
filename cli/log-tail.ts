/**
 * Reads function log files (serve/logs.ts) for `micro-fn logs`: what they hold, rotated files first, then what is
 * appended, across rotation (a file renamed `.1` is read to its end before its successor, which LogSink makes only
 * once the old one is complete), a serve restart (the file is appended to) and a removed folder (made again).
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

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
}

/** The files of the log at `path` that exist, oldest first: its rotated ones (`.N` ... `.1`), then itself. */
export function logFiles(path: string): string[] {
  const rotated: number[] = [];
  for (let n = 1; existsSync(`${path}.${n}`); n++) rotated.push(n);
  const files = rotated.reverse().map((n) => `${path}.${n}`);
  return existsSync(path) ? [...files, path] : files;
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
      for (const file of logFiles(path).filter((f) => f !== path)) out.push(...split(readText(file)));
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
    const followed: Followed = { path, offset: 0, partial: '' };
    this.#followed.set(path, followed);
    return followed;
  }

  /** What was appended to the followed file; past a rotation or a replacement, the rest of it and then the new one. */
  #read(f: Followed): Entry[] {
    const now = stat(f.path);
    const out = f.fd === undefined ? [] : this.#drain(f);
    if (now && now.ino !== f.ino) {
      // Renamed (rotated) or replaced: its successor is there now, and the old one was complete before it.
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
