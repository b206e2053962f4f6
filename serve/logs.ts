/** Function output, line by line: tagged with function name and invocation id, echoed and kept per function. */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export class LogSink {
  readonly dir: string;
  readonly #files = new Map<string, WriteStream>();
  readonly #echo: boolean;

  constructor(home: string, echo = true) {
    this.dir = join(home, 'logs');
    mkdirSync(this.dir, { recursive: true });
    this.#echo = echo;
  }

  /** The file `micro-fn logs <name>` reads. */
  static file(home: string, name: string): string {
    return join(home, 'logs', `${encodeURIComponent(name)}.log`);
  }

  write(name: string, invocation: string, stream: 'stdout' | 'stderr', line: string): void {
    const text = `${new Date().toISOString()} ${name} ${invocation} ${stream}: ${line}\n`;
    if (this.#echo) process.stdout.write(`${name} ${invocation} | ${line}\n`);
    let file = this.#files.get(name);
    if (!file) {
      file = createWriteStream(join(this.dir, `${encodeURIComponent(name)}.log`), { flags: 'a' });
      this.#files.set(name, file);
    }
    file.write(text);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#files.values()].map((f) => new Promise((r) => f.end(r))));
    this.#files.clear();
  }
}
