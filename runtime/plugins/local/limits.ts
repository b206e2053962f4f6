/**
 * What `micro-fn serve` accepts, as data: the names it keeps (functions, topics, endpoints) and the ranges of a
 * deploy's numbers. The CLI checks with these before it calls serve, and serve checks again (serve/validate.ts):
 * both sides read this one table, so they cannot disagree. No I/O.
 */
import { UserError } from '../../core/errors.js';

interface NameRule {
  /** Most characters. */
  max: number;
  pattern: RegExp;
  /** The character set, as a sentence part. */
  chars: string;
}

/**
 * Names serve keeps. They reach file names (`logs/<function>.log`, `dlq/<topic>.jsonl`), registry keys and
 * broker subjects, so they are short and plain: function names as Lambda's (plus dots, as go-micro's
 * `go.micro.srv.x`), topics as NATS subjects without wildcards.
 */
export const NAME_RULES = {
  function: {
    max: 64,
    pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    chars: 'letters, digits, ".", "_" and "-", starting with a letter or digit',
  },
  topic: {
    max: 255,
    pattern: /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/,
    chars: 'letters, digits, "_" and "-", in parts separated by single dots',
  },
  endpoint: {
    max: 128,
    pattern: /^[\w$]+\.[\w$]+$/,
    chars: 'Service.Method, each part letters, digits, "_" or "$"',
  },
} as const satisfies Record<string, NameRule>;

export type NameKind = keyof typeof NAME_RULES;

const LABEL: Record<NameKind, string> = { function: 'function name', topic: 'topic', endpoint: 'endpoint' };

/** The problem with `value` as a name of `kind`, as one sentence; undefined when it is a valid name. */
export function nameProblem(kind: NameKind, value: unknown): string | undefined {
  const rule = NAME_RULES[kind];
  const label = LABEL[kind];
  if (typeof value !== 'string' || value === '')
    return `a ${label} is required (1 to ${rule.max} characters: ${rule.chars})`;
  const shown = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value.length > rule.max)
    return `the ${label} ${shown} is ${value.length} characters long; the most is ${rule.max}`;
  if (!rule.pattern.test(value)) return `the ${label} ${shown} is not valid: use ${rule.chars}`;
  return undefined;
}

interface NumberRule {
  min: number;
  max: number;
  /** What one unit is, for the message. */
  unit: string;
}

/**
 * The numbers of a deploy (`Runtime.Deploy`, `micro-fn deploy --target local`, serve's defaults): whole numbers in
 * these ranges. The timeout's top is Lambda's (15 minutes), and so is the memory's (10,240 MiB).
 */
export const DEPLOY_LIMITS = {
  pool: { min: 0, max: 100, unit: 'warm processes' },
  concurrency: { min: 1, max: 1000, unit: 'invocations' },
  queue: { min: 0, max: 10_000, unit: 'invocations' },
  timeout: { min: 1, max: 900_000, unit: 'milliseconds' },
  memory: { min: 16, max: 10_240, unit: 'MiB' },
} as const satisfies Record<string, NumberRule>;

export type DeployLimit = keyof typeof DEPLOY_LIMITS;

/** The range of `field` as words: `a whole number from 1 to 1000 (invocations)`. */
export function rangeOf(field: DeployLimit): string {
  const { min, max, unit } = DEPLOY_LIMITS[field];
  return `a whole number from ${min} to ${max} (${unit})`;
}

/** The problem with `value` as `field`, naming the field and its range; undefined when it is valid. */
export function numberProblem(field: DeployLimit, value: unknown): string | undefined {
  const { min, max } = DEPLOY_LIMITS[field];
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return undefined;
  const got =
    typeof value === 'number'
      ? String(value)
      : typeof value === 'string'
        ? `${JSON.stringify(value)}, a string`
        : typeof value;
  return `${field} must be ${rangeOf(field)}; got ${value === null ? 'null' : got}`;
}

/** `value` as a name of `kind`, given on a command line: a UserError (one line) when it is not one. */
export function nameArgument(kind: NameKind, value: string): string {
  const problem = nameProblem(kind, value);
  if (problem) throw new UserError(problem);
  return value;
}

/** `value` (a flag's number, already parsed) within `field`'s range: a UserError naming `--field` otherwise. */
export function limitArgument(field: DeployLimit, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const problem = numberProblem(field, value);
  if (problem) throw new UserError(`--${problem}`);
  return value;
}
