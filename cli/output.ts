/** How the CLI reports: one clear line for a user's mistake, error JSON with --json, a stack only for bugs. */
import { isMicroError } from '../runtime/core/errors.js';

const useColor = (stream: NodeJS.WriteStream) => stream.isTTY === true && !process.env.NO_COLOR;

export function red(text: string, stream: NodeJS.WriteStream = process.stderr): string {
  return useColor(stream) ? `\x1b[31m${text}\x1b[39m` : text;
}

export function dim(text: string, stream: NodeJS.WriteStream = process.stderr): string {
  return useColor(stream) ? `\x1b[2m${text}\x1b[22m` : text;
}

/**
 * The exit code of a one-shot run (`invoke`, `run`) that timed out: its reply was a 408. 124, as GNU `timeout`
 * exits when the command it runs timed out.
 */
export const EXIT_TIMED_OUT = 124;

/** A one-shot run's exit code from how it ended: 0 ok, 124 timed out (408), 1 any other failure. */
export function exitCode(ok: boolean, code: number | undefined): number {
  return ok ? 0 : code === 408 ? EXIT_TIMED_OUT : 1;
}

/** Prints `err` on stderr the way its kind deserves and returns the exit code (1). */
export function report(err: unknown, json: boolean): number {
  if (isMicroError(err)) {
    process.stderr.write(
      json ? `${JSON.stringify(err)}\n` : `${red('micro-fn:')} ${err.detail} (${err.code} ${err.status})\n`,
    );
  } else if (err instanceof Error && err.name === 'UserError') {
    // Matched by name: the error may come from the function's bundle, another copy of the runtime.
    const message = (err as Error).message;
    // A failure may keep the whole answer it summarises (a Lambda waiter's last GetFunction): --json shows it.
    const response = (err as { response?: unknown }).response;
    const detail = typeof response === 'string' ? `${message}; the whole response: ${response}` : message;
    process.stderr.write(
      json
        ? `${JSON.stringify({ id: 'micro-fn', code: 400, detail, status: 'Bad Request' })}\n`
        : `${red('micro-fn:')} ${message}\n`,
    );
  } else if (json) {
    // Still error JSON, as --json promises; the stack goes first, for the report.
    const detail = `unexpected error (a bug: please report it): ${(err as Error)?.message ?? String(err)}`;
    process.stderr.write(
      `${(err as Error)?.stack ?? String(err)}\n${JSON.stringify({ id: 'micro-fn', code: 500, detail, status: 'Internal Server Error' })}\n`,
    );
  } else {
    process.stderr.write(
      `${red('micro-fn: unexpected error (a bug: please report it)')}\n${(err as Error)?.stack ?? String(err)}\n`,
    );
  }
  return 1;
}

/** Writes `text` to a stream and resolves once it is flushed (so exiting right after loses nothing). */
export function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}
