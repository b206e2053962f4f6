/**
 * Function output, line by line: tagged with function name and invocation id, echoed and kept per function. A
 * file-system error never reaches the function or serve: it is reported once, and the file is opened again later
 * (its folder made again if it was removed).
 */
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileName } from './validate.js';

/** How often an open log file is checked for still being there (its folder may have been removed). */
const CHECK_MS = 1000;
/** How long lines are not written after a failure before the file is opened again. */
const RETRY_MS = 5000;

interface LogFile {
  path: string;
  stream: WriteStream;
  checked: number;
}

export class LogSink {
  readonly dir: string;
  readonly #files = new Map<string, LogFile>();
  /** Functions whose file failed, until when lines are not written. */
  readonly #failed = new Map<string, number>();
  /** Failures already reported, by function and error code: each is said once. */
  readonly #reported = new Set<string>();
  readonly #echo: boolean;
  readonly #report: (line: string) => void;

  /** `report` receives a line for serve's stderr when a log cannot be written (default: stderr). */
  constructor(
    home: string,
    echo = true,
    report: (line: string) => void = (line) => void process.stderr.write(`${line}\n`),
  ) {
    this.dir = join(home, 'logs');
    mkdirSync(this.dir, { recursive: true });
    this.#echo = echo;
    this.#report = report;
  }

  /** The file `micro-fn logs <name>` reads. */
  static file(home: string, name: string): string {
    return join(home, 'logs', fileName(name, '.log'));
  }

  write(name: string, invocation: string, stream: 'stdout' | 'stderr', line: string): void {
    const text = `${new Date().toISOString()} ${name} ${invocation} ${stream}: ${line}\n`;
    if (this.#echo) process.stdout.write(`${name} ${invocation} | ${line}\n`);
    this.#open(name)?.stream.write(text);
  }

  /** The open file of `name`: opened (its folder made) when there is none, or when it was removed. */
  #open(name: string): LogFile | undefined {
    const now = Date.now();
    const failed = this.#failed.get(name);
    if (failed !== undefined && now < failed) return undefined;
    let file = this.#files.get(name);
    if (file && now - file.checked > CHECK_MS) {
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
      file = { path, stream, checked: now };
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
    const files = [...this.#files.values()];
    this.#files.clear();
    await Promise.all(
      files.map((f) => new Promise<void>((resolve) => (f.stream.destroyed ? resolve() : f.stream.end(resolve)))),
    );
  }
}
