/** Stdin as NDJSON, for the commands that send a request stream (`call`, `invoke`). */
import { UserError } from '../runtime/core/errors.js';

/**
 * Stdin, one JSON value per line, read as the consumer asks for the next (not read ahead); blank lines are skipped.
 * A line that is no JSON throws a UserError naming it.
 */
export async function* stdinJson(): AsyncGenerator<{ line: string; value: unknown }> {
  // Loaded here: node:readline (and the streams under it) would cost every invoke's start, stdin read or not.
  const { createInterface } = await import('node:readline');
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of lines) {
      n++;
      if (line.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw new UserError(`stdin line ${n} is not JSON: ${(err as Error).message}`);
      }
      yield { line, value };
    }
  } finally {
    lines.close();
  }
}
