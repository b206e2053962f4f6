/**
 * serve's checks of what it is sent: names and numbers by the rules both serve and the CLI read
 * (runtime/plugins/local/limits.ts), a Deploy request whole, bundle paths (only serve's own bundle folder), and
 * the file names that names become. Every refusal is a 400 whose detail says what to send instead.
 */
import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { errors, type MicroError } from '../runtime/core/errors.js';
import {
  DEPLOY_LIMITS,
  nameProblem,
  numberProblem,
  type DeployLimit,
  type NameKind,
} from '../runtime/plugins/local/limits.js';
import { RUNTIME_SERVICE, type DeployRequest } from '../runtime/plugins/local/protocol.js';

const bad = (detail: string): MicroError => errors.badRequest(RUNTIME_SERVICE, detail);

/** `value` as a name of `kind`; a 400 naming the rule when it is not one. */
export function checkName(kind: NameKind, value: unknown): string {
  const problem = nameProblem(kind, value);
  if (problem) throw bad(problem);
  return value as string;
}

/** An environment variable's name, as POSIX shells take them. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Linux refuses one `KEY=VALUE` string longer than this (MAX_ARG_STRLEN) when it starts a process. */
const MAX_ENV_ENTRY = 128 * 1024;
const MAX_ENV_TOTAL = 1024 * 1024;

/** A function's declared environment: names as shells take them, string values without NUL, within Linux's limits. */
export function checkEnv(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw bad('env must be a JSON object of names to string values');
  let total = 0;
  for (const [key, v] of Object.entries(value)) {
    if (!ENV_NAME.test(key))
      throw bad(`env name ${JSON.stringify(key.slice(0, 40))} is not valid: use letters, digits and "_"`);
    if (typeof v !== 'string') throw bad(`env ${key} must be a string; got ${v === null ? 'null' : typeof v}`);
    if (v.includes('\0')) throw bad(`env ${key} contains a NUL character, which no process environment can hold`);
    const size = Buffer.byteLength(key) + Buffer.byteLength(v) + 2;
    if (size > MAX_ENV_ENTRY)
      throw bad(`env ${key} is ${size} bytes; the most one variable may be is ${MAX_ENV_ENTRY}`);
    total += size;
  }
  if (total > MAX_ENV_TOTAL) throw bad(`env is ${total} bytes in all; the most is ${MAX_ENV_TOTAL}`);
  return value as Record<string, string>;
}

/** The folder serve's bundles live in: `MICRO_FN_HOME/functions`, one folder per build. */
export const bundleRoot = (home: string): string => join(home, 'functions');

/**
 * The real path of `bundle` when it is `MICRO_FN_HOME/functions/<build>/index.mjs` (symlinks resolved), the
 * only bundles serve runs; a 400 otherwise.
 */
export async function checkBundle(home: string, bundle: unknown): Promise<string> {
  const expected = `${join(bundleRoot(home), '<build>', 'index.mjs')}, as \`micro-fn deploy\` builds it`;
  if (typeof bundle !== 'string' || bundle === '') throw bad(`bundle is required: the path of ${expected}`);
  if (!isAbsolute(bundle)) throw bad(`bundle must be an absolute path: ${expected}; got ${JSON.stringify(bundle)}`);
  const real = await realpath(bundle).catch(() => undefined);
  if (!real) throw bad(`the bundle ${bundle} does not exist (was it built under another MICRO_FN_HOME?)`);
  const root = await realpath(bundleRoot(home)).catch(() => undefined);
  if (root === undefined || dirname(dirname(real)) !== root || basename(real) !== 'index.mjs')
    throw bad(`the bundle must be ${expected}; got ${bundle}`);
  return real;
}

/** True when `dir` is one build's folder inside serve's bundle folder (symlinks resolved): the only thing removed. */
export async function isBuildFolder(home: string, dir: string): Promise<boolean> {
  const none = () => '';
  const [real, root] = await Promise.all([realpath(dir).catch(none), realpath(bundleRoot(home)).catch(none)]);
  return real !== '' && root !== '' && dirname(real) === root;
}

/** A Deploy request, checked whole: the bundle, the entry, the environment, and every number with its range. */
export async function checkDeploy(value: unknown, home: string): Promise<DeployRequest> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw bad('Runtime.Deploy takes a JSON object');
  const r = value as Record<string, unknown>;
  const request: Partial<DeployRequest> = {};
  for (const field of Object.keys(DEPLOY_LIMITS) as DeployLimit[]) {
    if (r[field] === undefined) continue;
    const problem = numberProblem(field, r[field]);
    if (problem) throw bad(problem);
    request[field] = r[field] as number;
  }
  if (r.entry !== undefined) {
    if (typeof r.entry !== 'string' || !isAbsolute(r.entry))
      throw bad("entry must be the absolute path of the function's entry file");
    request.entry = r.entry;
  }
  if (r.env !== undefined) request.env = checkEnv(r.env);
  return { ...request, bundle: await checkBundle(home, r.bundle) };
}

/**
 * The file name `name` is kept under (`<name><ext>`): percent-encoded, so it is one path segment whatever the
 * name holds; past 200 characters, its start and a hash of the whole, so it fits any file system's 255. `+` never
 * appears in percent-encoded text, so it marks a hashed name: distinct names get distinct files.
 */
export function fileName(name: string, ext: string): string {
  const encoded = encodeURIComponent(name).replace(/\*/g, '%2A').replace(/^\./, '%2E');
  if (encoded.length + ext.length <= 200) return `${encoded}${ext}`;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 32);
  return `${encoded.slice(0, 120)}+${hash}${ext}`;
}
