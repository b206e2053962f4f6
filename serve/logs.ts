/**
 * Function output, line by line: tagged with function name and invocation id, echoed and kept per function. A
 * file-system error never reaches the function or serve: it is reported once, and the file is opened again later
 * (its folder made again if it was removed).
 *
 * A file that would pass `maxBytes` is rotated: once every line written to it is on disk, `<name>.log` is renamed
 * `<name>.log.<N>`, N one more than the newest rotated file's (1 for the first), and the oldest past `keep` are
 * removed; the lines that arrive meanwhile wait for the new file. A rotated file keeps its name until it is removed,
 * and its number says where it was in the sequence: a follower (cli/log-tail.ts) reads a file to its end once the
 * name holds a new one, then the rotated files after it in order, and knows from a missing number that a file was
 * removed before it could be read.
 */
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  type WriteStream,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { StackMapper } from './source-map.js';
import { fileName } from './validate.js';

/** How often an open log file is checked for still being there (its folder may have been removed). */
const CHECK_MS = 1000;
/** How long lines are not written after a failure before the file is opened again. */
const RETRY_MS = 5000;

/** Size of a log file past which it is rotated, and rotated files kept, unless serve is told otherwise. */
export const LOG_ROTATION = { maxBytes: 10 * 1024 * 1024, keep: 3 };

export interface LogRotation {
  /** Bytes a file may hold; a line that would pass it goes to a new file. */
  maxBytes: number;
  /** Rotated files kept (the highest numbers); 0 keeps none. */
  keep: number;
}

interface LogFile {
  path: string;
  stream: WriteStream;
  checked: number;
  /** Bytes in the file, written or on their way. */
  size: number;
  /** Lines that arrived while the file was being rotated: written to the new file first. */
  waiting?: string[];
}

export class LogSink {
  readonly dir: string;
  readonly #files = new Map<string, LogFile>();
  /** Functions whose file failed, until when lines are not written. */
  readonly #failed = new Map<string, number>();
  /** Failures already reported, by function and error code: each is said once. */
  readonly #reported = new Set<string>();
  readonly #echo: boolean | 'json';
  readonly #report: (line: string) => void;
  readonly #rotation: LogRotation;
  /** Rotations in progress: close() waits for them (their lines go to the new file first). */
  readonly #rotating = new Set<Promise<void>>();
  /** The number of the last file rotated, per function: numbers never go back while serve runs. */
  readonly #rotated = new Map<string, number>();
  /** Maps stack frames of the functions' bundles to their sources, reading a bundle's map when one of its frames shows. */
  readonly #stacks: StackMapper;

  /**
   * `echo`: print each line on stdout too (`json`: as a JSON object per line); `report` receives a line for serve's
   * stderr when a log cannot be written (default: stderr).
   */
  constructor(
    home: string,
    echo: boolean | 'json' = true,
    report: (line: string) => void = (line) => void process.stderr.write(`${line}\n`),
    rotation: LogRotation = LOG_ROTATION,
  ) {
    this.dir = join(home, 'logs');
    mkdirSync(this.dir, { recursive: true });
    this.#echo = echo;
    this.#report = report;
    this.#rotation = rotation;
    this.#stacks = new StackMapper({ under: [home, tmpdir()] });
  }

  /** The folder of every function's log files. */
  static folder(home: string): string {
    return join(home, 'logs');
  }

  /** The file `micro-fn logs <name>` reads (its rotated predecessors are `<file>.<N>`, `rotatedLogs`). */
  static file(home: string, name: string): string {
    return join(home, 'logs', fileName(name, '.log'));
  }

  /** Keeps (and echoes) one line of a function's output; frames of its bundle in it name its sources instead. */
  write(name: string, invocation: string, stream: 'stdout' | 'stderr', output: string): void {
    const line = this.#stacks.mapText(output);
    const time = new Date().toISOString();
    const text = `${time} ${name} ${invocation} ${stream}: ${line}\n`;
    if (this.#echo === 'json')
      process.stdout.write(
        `${JSON.stringify({ type: 'output', time, function: name, invocation, stream, message: line })}\n`,
      );
    else if (this.#echo) process.stdout.write(`${name} ${invocation} | ${line}\n`);
    this.#append(name, text);
  }

  /** Appends a line to the file of `name`: after the lines waiting for a rotation, rotating it first when full. */
  #append(name: string, text: string): void {
    const file = this.#open(name);
    if (!file) return;
    if (file.waiting) return void file.waiting.push(text);
    const bytes = Buffer.byteLength(text);
    if (file.size > 0 && file.size + bytes > this.#rotation.maxBytes) return this.#rotate(name, file, text);
    file.size += bytes;
    file.stream.write(text);
  }

  /**
   * Ends the file, and once all of it is on disk renames it `.1` (shifting the older ones) and opens a new one with
   * `first` and what arrived meanwhile.
   */
  #rotate(name: string, file: LogFile, first: string): void {
    file.waiting = [first];
    let done!: () => void;
    const rotated = new Promise<void>((resolve) => (done = resolve));
    this.#rotating.add(rotated);
    void rotated.then(() => this.#rotating.delete(rotated));
    file.stream.end(() => {
      const { keep } = this.#rotation;
      try {
        if (keep === 0) rmSync(file.path, { force: true });
        else {
          const kept = rotatedLogs(file.path);
          const number = Math.max(this.#rotated.get(name) ?? 0, kept.at(-1)?.number ?? 0) + 1;
          this.#rotated.set(name, number);
          // Renamed first, then the oldest removed: a file is never missing while it is among the newest `keep`.
          renameSync(file.path, `${file.path}.${number}`);
          for (const old of kept) if (old.number <= number - keep) rmSync(old.path, { force: true });
        }
      } catch (err) {
        this.#fail(name, file.path, err as NodeJS.ErrnoException);
      }
      if (this.#files.get(name) === file) this.#files.delete(name);
      const waiting = file.waiting ?? [];
      file.waiting = undefined;
      for (const text of waiting) this.#append(name, text); // the new file may fill (and rotate) too
      done();
    });
  }

  /** The open file of `name`: opened (its folder made) when there is none, or when it was removed. */
  #open(name: string): LogFile | undefined {
    const now = Date.now();
    const failed = this.#failed.get(name);
    if (failed !== undefined && now < failed) return undefined;
    let file = this.#files.get(name);
    if (file && !file.waiting && now - file.checked > CHECK_MS) {
      file.checked = now;
      // Removed under serve (rm -r logs/): lines would go to a file nobody can read; start a new one.
      if (!existsSync(file.path)) this.#drop(name, file);
      file = this.#files.get(name);
    }
    if (file) return file;
    const path = join(this.dir, fileName(name, '.log'));
    try {
      mkdirSync(this.dir, { recursive: true });
      const stream = createWriteStream(path, { flags: 'a' });
      let size = 0;
      try {
        size = statSync(path).size;
      } catch {
        // not there yet: the stream makes it
      }
      file = { path, stream, checked: now, size };
      stream.on('error', (err: NodeJS.ErrnoException) => this.#fail(name, path, err));
      this.#files.set(name, file);
      return file;
    } catch (err) {
      this.#fail(name, path, err as NodeJS.ErrnoException);
      return undefined;
    }
  }

  #drop(name: string, file: LogFile): void {
    if (this.#files.get(name) === file) this.#files.delete(name);
    file.stream.destroy();
  }

  #fail(name: string, path: string, err: NodeJS.ErrnoException): void {
    const file = this.#files.get(name);
    if (file?.path === path) this.#drop(name, file);
    this.#failed.set(name, Date.now() + RETRY_MS);
    const key = `${name}\0${err.code ?? err.message}`;
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.#report(
      `[micro-fn serve] cannot write the log of ${name} to ${path}: ${err.code ?? err.message}; the function keeps running, its lines are not kept until the file can be written (tried again every ${RETRY_MS / 1000} s)`,
    );
  }

  async close(): Promise<void> {
    while (this.#rotating.size > 0) await Promise.all(this.#rotating);
    const files = [...this.#files.values()];
    this.#files.clear();
    await Promise.all(
      files.map((f) => new Promise<void>((resolve) => (f.stream.destroyed ? resolve() : f.stream.end(resolve)))),
    );
  }
}

/** A rotated file of a log: its path (`<log>.<number>`) and number. */
export interface RotatedLog {
  path: string;
  number: number;
}

/**
 * The rotated files of the log at `path` that exist now, oldest (lowest number) first. Read from the folder rather
 * than probed: numbers start wherever removal left them.
 */
export function rotatedLogs(path: string): RotatedLog[] {
  const base = basename(path);
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return [];
  }
  return names
    .map((n) => (n.startsWith(`${base}.`) && /^\d{1,15}$/.test(n.slice(base.length + 1)) ? n : undefined))
    .filter((n) => n !== undefined)
    .map((n) => ({ path: join(dirname(path), n), number: Number(n.slice(base.length + 1)) }))
    .sort((a, b) => a.number - b.number);
}

/** One kept line: when it was written, by which function's process, during which invocation (`init` while loading). */
export interface LogLine {
  time: string;
  function: string;
  invocation: string;
  stream: 'stdout' | 'stderr';
  message: string;
}

const LINE = /^(\S+) (\S+) (.*?) (stdout|stderr): (.*)$/s;

/** A line of a log file as LogSink wrote it, or undefined for one that is not (a file edited by hand). */
export function parseLogLine(text: string): LogLine | undefined {
  const m = LINE.exec(text);
  if (!m) return undefined;
  return { time: m[1]!, function: m[2]!, invocation: m[3]!, stream: m[4] as LogLine['stream'], message: m[5]! };
}
