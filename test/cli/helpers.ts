/** Runs the real, built CLI as a separate process, the way a user does. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { readCredential } from '../../runtime/plugins/local/credential.js';
import { WAIT_SCALE } from '../helpers.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));
/** The command package.json names, as `micro-fn` runs it. */
export const bin = join(
  root,
  (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['micro-fn']!,
);

/** The last line of `text` that parses as JSON (the error JSON the CLI prints last). */
export function lastJson(text: string): unknown {
  for (const line of text.trim().split('\n').reverse()) {
    try {
      return JSON.parse(line);
    } catch {
      // a log line
    }
  }
  throw new Error(`no JSON line in: ${text}`);
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A scratch MICRO_FN_HOME; remove it with `cleanup`. */
export function tempHome(): { home: string; cleanup(): void } {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-test-'));
  return { home, cleanup: () => rmSync(home, { recursive: true, force: true }) };
}

function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  // No NODE_OPTIONS: the test runner's tsx loader must not leak into the CLI.
  const { NODE_OPTIONS: _options, FORCE_COLOR: _color, ...rest } = process.env;
  return { ...rest, NO_COLOR: '1', ...env };
}

/**
 * Runs `micro-fn ...args` to completion; kills it after `timeout` ms. `via`: node's arguments that start the CLI
 * (default: the bin).
 */
export function cli(
  args: string[],
  env: Record<string, string>,
  options: { input?: string; timeout?: number; via?: string[] } = {},
): Promise<Result> {
  const limit = (options.timeout ?? 15000) * WAIT_SCALE;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(options.via ?? [bin]), ...args], {
      cwd: root,
      env: childEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`micro-fn ${args.join(' ')} did not exit within ${limit} ms; stderr: ${stderr}`));
    }, limit);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Runs each `micro-fn ...args` and checks that it fails (exit 1) with one line on stderr matching its pattern. */
export async function refusesInOneLine(
  cases: readonly (readonly [readonly string[], RegExp])[],
  env: Record<string, string>,
): Promise<void> {
  for (const [args, pattern] of cases) {
    const r = await cli([...args], env);
    assert.is(r.code, 1, args.join(' '));
    assert.match(r.stderr, pattern);
    assert.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
}

export interface Running {
  child: ChildProcess;
  /** Resolves with the first stderr match of `pattern`. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (kills the process after `ms`). */
  exited(ms?: number): Promise<number | null>;
  stderr(): string;
  stdout(): string;
  kill(): void;
}

/** Starts `micro-fn ...args` and leaves it running. */
export function start(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  const listeners = new Set<() => void>();
  child.stderr!.on('data', (d: Buffer) => {
    err += d;
    for (const l of listeners) l();
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    waitFor(pattern, ms = 15000) {
      ms *= WAIT_SCALE;
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = err.match(pattern);
          if (m) {
            done();
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${pattern} on stderr within ${ms} ms; got: ${err}`));
        }, ms);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async exited(ms = 15000) {
      ms *= WAIT_SCALE;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<null>((resolve) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, ms);
      });
      const code = await Promise.race([exit, killed]);
      clearTimeout(timer);
      if (code === null && child.exitCode === null)
        throw new Error(`process did not exit within ${ms} ms; stderr: ${err}`);
      return code;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The header serve's control service needs: its credential's control token, read from `home` as the CLI reads it. */
export function controlHeaders(home: string): Record<string, string> {
  const credential = readCredential(home);
  if (!credential) throw new Error(`no credential in ${home}: has serve started there?`);
  return { authorization: `Bearer ${credential.control}` };
}

/** The AWS settings a user would have (dummy credentials, a region): for Lambda deploys to serve; nothing leaves 127.0.0.1. */
export const dummyAws = {
  AWS_ACCESS_KEY_ID: 'AKIDTEST',
  AWS_SECRET_ACCESS_KEY: 'secret',
  AWS_REGION: 'us-east-1',
} as const;
