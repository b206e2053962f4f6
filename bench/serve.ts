/** A `micro-fn serve` process for benchmarks, and the CLI run as a process, as a user would. */
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCredential } from '../runtime/plugins/local/credential.js';
import type { FunctionStats } from '../runtime/plugins/local/protocol.js';

export const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'cli', 'bin.mjs');

/**
 * Starts `micro-fn serve` on a free port; resolves with its gateway URL. `readStdout`: its stdout (the request log) is
 * a pipe that is read and dropped, as a terminal or a log collector reads it, instead of going nowhere.
 */
export async function startServe(
  args: string[],
  env: Record<string, string>,
  servers: ChildProcess[],
  { readStdout = false } = {},
): Promise<string> {
  const child = spawn(process.execPath, [bin, 'serve', '--address', '127.0.0.1:0', '--quiet', ...args], {
    env,
    stdio: ['ignore', readStdout ? 'pipe' : 'ignore', 'pipe'],
  });
  servers.push(child);
  child.stdout?.resume();
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

/** Stops every serve in `servers` (SIGTERM, then SIGKILL after 5 s). */
export async function stopServe(servers: ChildProcess[]): Promise<void> {
  for (const child of servers.splice(0)) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    child.kill('SIGKILL');
  }
}

/** Runs `micro-fn ...args` from the repository root; rejects on a non-zero exit. */
export function cliRun(args: string[], env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`micro-fn ${args.join(' ')} exited ${code}`)),
    );
  });
}

const helloBody = '{"name":"Ada"}';
const keepAlive = new Agent({ keepAlive: true });

/**
 * POSTs a JSON `body` to `url` on a kept-alive connection: node:http, as lean as a client gets in Node (fetch costs
 * ~0.7 ms more per request here, all of it on the client's side). Resolves with the reply's text; rejects unless 200.
 */
export function postJson(url: string, body: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: keepAlive,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Calls helloworld's Greeter.Hello through `gateway` on a kept-alive connection, with `headers`; rejects unless 200. */
export async function callHello(gateway: string, headers: Record<string, string> = {}): Promise<void> {
  await postJson(`${gateway}/helloworld/Greeter.Hello`, helloBody, headers);
}

/** A long-running node:http server doing helloworld's work, in a process of its own as a server is; its URL. */
export function startBare(servers: ChildProcess[]): Promise<string> {
  const code = `require('node:http').createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Hello ' + JSON.parse(body).name })));
}).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(child);
  return new Promise((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(`http://127.0.0.1:${String(d).trim()}`));
    child.once('exit', (code) => reject(new Error(`the baseline server exited ${code}`)));
  });
}

export interface PoolFigures {
  warm: number;
  starting: number;
  started: number;
  calls: number;
  cold: number;
}

/** A function's pool figures and counts (helloworld's by default), from serve's Runtime.Stats. */
export async function poolFigures(gateway: string, home: string, name = 'helloworld'): Promise<PoolFigures> {
  const headers = { authorization: `Bearer ${readCredential(home)!.control}` };
  const res = await fetch(`${gateway}/micro-fn/Runtime.Stats`, { method: 'POST', body: '{}', headers });
  const { functions } = (await res.json()) as { functions: FunctionStats[] };
  const f = functions.find((f) => f.name === name)!;
  const pool = f.pool!;
  return { ...pool, started: pool.started ?? 0, calls: f.invocations, cold: f.coldStarts };
}

/**
 * Waits until a function's pool has stopped starting processes with at least `warm` of them warm (full and idle):
 * a measure taken then does not share the machine with a process starting.
 */
export async function settlePool(gateway: string, home: string, name = 'helloworld', warm = 1): Promise<void> {
  for (;;) {
    const s = await poolFigures(gateway, home, name);
    if (s.warm >= warm && s.starting === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
