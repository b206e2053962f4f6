/**
 * Test helpers: a function built with the Deno build and run by the real `deno` binary (the `deno` npm package's),
 * on 127.0.0.1, in a process group of its own so that what `deno task` starts stops with it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildDeno, type DenoBuild } from '../../../adapters/deno/build.js';
import { withTimeout } from '../../helpers.js';

export const root = fileURLToPath(new URL('../../..', import.meta.url));
/** `DENO` names another binary; by default the devDependency's. */
export const DENO = process.env.DENO ?? join(root, 'node_modules', '.bin', 'deno');

if (!existsSync(DENO)) throw new Error(`${DENO} is missing: npm install (the deno devDependency brings the binary)`);

export const fixture = (name: string) => join(root, 'test', 'fixtures', name, 'index.ts');
export const example = (name: string) => join(root, 'examples', name, 'index.ts');

/** A temporary folder, removed by `remove()`. */
export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-deno-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Builds `entry` into `outdir` for Deno, minified as a deploy does, for the configuration `env`. */
export function buildFor(entry: string, outdir: string, env: Record<string, string> = {}): Promise<DenoBuild> {
  return withTimeout(buildDeno(entry, { outdir, minify: true, env }), 30_000, 'the Deno build');
}

/**
 * What a Deno process gets: only what Deno itself needs, so no MICRO_* of this process leaks into a function.
 * DENO_DIR is Deno's cache; it holds nothing these bundles need (they import nothing), so a shared one is fine.
 */
export function childEnv(env: Record<string, string> = {}): Record<string, string> {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'DENO_DIR'].filter((k) => process.env[k] !== undefined);
  const base = Object.fromEntries(keep.map((k) => [k, process.env[k]!]));
  return { ...base, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', ...env };
}

export interface DenoProcess {
  /** `http://127.0.0.1:<port>`, from Deno's "Listening on" line. */
  url: string;
  /** Everything it wrote to stdout and stderr, in order. */
  output(): string;
  /** SIGTERM to its process group, SIGKILL after 5 s; resolves once it exited. */
  stop(): Promise<void>;
}

/** Runs `deno ...args` and resolves once it listens on 127.0.0.1 (within 30 s), or rejects with its output. */
export async function startDeno(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<DenoProcess> {
  const child = spawn(DENO, args, {
    cwd: options.cwd ?? root,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      group('SIGTERM');
      const timer = setTimeout(() => group('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    group('SIGKILL'); // a `deno task` child that outlived its parent
  };
  const listening = new Promise<string>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(output);
      if (match) resolve(match[1]!);
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.once('error', reject);
    void exited.then(() => reject(new Error(`deno ${args.join(' ')} exited ${child.exitCode}: ${output}`)));
  });
  try {
    const url = await withTimeout(listening, 30_000, `deno ${args.join(' ')} listening`);
    return { url, output: () => output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Serves a built module with `deno serve` on a free port of 127.0.0.1, with `permissions` (default: MICRO_* only). */
export function serveBuilt(
  file: string,
  env: Record<string, string> = {},
  permissions = ['--allow-env=MICRO_*'],
): Promise<DenoProcess> {
  return startDeno(['serve', '--no-prompt', ...permissions, '--host', '127.0.0.1', '--port', '0', file], { env });
}

/** POSTs `body` as JSON to `url + path`, bounded. */
export function post(
  url: string,
  path: string,
  body: BodyInit,
  headers: Record<string, string> = {},
): Promise<Response> {
  const init: RequestInit & { duplex?: 'half' } = {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  };
  if (body instanceof ReadableStream) init.duplex = 'half';
  return withTimeout(fetch(`${url}${path}`, init), 15_000, `POST ${path}`);
}

/** Runs `deno ...args` to completion (killed after `ms`): its exit code and output. */
export function runDeno(args: string[], options: { cwd?: string; env?: Record<string, string>; ms?: number } = {}) {
  const child = spawn(DENO, args, {
    cwd: options.cwd ?? root,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const done = new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
  return withTimeout(done, options.ms ?? 30_000, `deno ${args.join(' ')}`).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
}
