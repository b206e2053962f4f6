/** Reading option values the way every target does: whole numbers, durations, KEY=VALUE pairs. Build-time only. */
import { UserError } from '../../runtime/core/errors.js';

/** A whole number of at least `min`, or undefined when the flag was not given. */
export function whole(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UserError(`--${flag} takes a whole number of at least ${min}; got "${value}"`);
  return n;
}

/** Parses `500`, `500ms`, `2s`, `1m`, `24h` into milliseconds. */
export function duration(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) throw new UserError(`--${flag} takes a duration like 500ms, 30s, 5m or 24h; got "${value}"`);
  return Math.round(Number(match[1]) * UNIT_MS[match[2] ?? 'ms']!);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `--env KEY=VALUE` (or `KEY`, which passes this process's value) as a record. */
export function envPairs(
  pairs: readonly string[] | undefined,
  from: Readonly<Record<string, string | undefined>> = process.env,
): Record<string, string> {
  return Object.fromEntries(
    (pairs ?? []).map((text): [string, string] => {
      const i = text.indexOf('=');
      if (i === 0) throw new UserError(`--env takes KEY=VALUE or KEY; got "${text}"`);
      if (i > 0) return [text.slice(0, i), text.slice(i + 1)];
      const value = from[text];
      if (value === undefined)
        throw new UserError(`--env ${text}: ${text} is not set here; give it a value with --env ${text}=VALUE`);
      return [text, value];
    }),
  );
}

/** Bytes as `812 B` or `26.0 KiB`. */
export const kib = (bytes: number): string => (bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`);
