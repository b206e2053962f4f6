/** What a function process wrote on stderr while its bundle loaded, and the one line of it that says why it failed. */

const MAX_LINES = 200;
const MAX_REASON = 500;

export class LoadOutput {
  readonly #lines: string[] = [];

  /** Keeps `line` (the first MAX_LINES only: the reason comes early, a flood after it does not matter). */
  push(line: string): void {
    if (this.#lines.length < MAX_LINES) this.#lines.push(line);
  }

  /**
   * The error Node printed (`Error: boom`, `SyntaxError: …`, `Error [ERR_MODULE_NOT_FOUND]: …`), else the last line
   * that is not a stack frame or Node's version; `exit` (how the process ended) when it wrote nothing.
   */
  reason(exit: string): string {
    const lines = this.#lines.map((l) => l.trim()).filter(Boolean);
    const error = lines.find((l) => /^(?:Uncaught )?[A-Z]?[A-Za-z]*(?:Error|Exception)(?: \[[A-Z_]+\])?: /.test(l));
    const last = lines.filter((l) => !/^at |^Node\.js v|^\^+$/.test(l)).at(-1);
    const why = error ?? last;
    if (!why) return `${exit}, and wrote nothing on stderr (is it a bundle \`micro-fn deploy\` built?)`;
    return `${why.length > MAX_REASON ? `${why.slice(0, MAX_REASON)}…` : why} (${exit})`;
  }
}
