/**
 * The target contract on Deno: each function written as `micro-fn deploy --target deno --dry-run` writes it (the
 * module, deno.json) and served by Deno's own tooling, `deno task start`, on 127.0.0.1. Deno has no message source.
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { deployDeno } from '../../../adapters/deno/deploy.js';
import { outputSettled, targetContract, type TargetFunction, type TargetHost } from '../../contracts/target.js';
import { withTimeout } from '../../helpers.js';
import type { SocketResult, SocketScript } from '../../contracts/socket-script.js';

const run = promisify(execFile);
import { root, startDeno, tempDir, type DenoProcess } from './deno.js';

async function startDenoHost(functions: readonly TargetFunction[]): Promise<TargetHost> {
  const dirs = functions.map(() => tempDir());
  const served = new Map<string, DenoProcess>();
  const close = async () => {
    await Promise.allSettled([...served.values()].map((d) => d.stop()));
    for (const d of dirs) d.remove();
  };
  try {
    await Promise.all(
      functions.map(async ({ name, entry }, i) => {
        const { dir } = dirs[i]!;
        const writing = deployDeno({ entry: join(root, entry), name, outdir: dir, host: '127.0.0.1', port: 0 });
        await withTimeout(writing, 30_000, `writing ${name} for Deno`);
        served.set(name, await startDeno(['task', 'start'], { cwd: dir }));
      }),
    );
  } catch (err) {
    await close();
    throw err;
  }
  const of = (fn: string): DenoProcess => {
    const d = served.get(fn);
    if (!d) throw new Error(`no Deno server for ${fn}`);
    return d;
  };
  return {
    fetch: (fn, path, init) => withTimeout(fetch(`${of(fn).url}${path}`, init), 30_000, `deno: ${path}`),
    // `deno serve` evaluates the module, then listens: a server that said "Listening on" has it loaded.
    ready: (fn) => outputSettled(async () => of(fn).output()),
    output: async (fn) => of(fn).output(),
    socket: (fn, path, script) => socketTo(of(fn).url, path, script),
    close,
  };
}

/**
 * Node's own WebSocket, in a child process (Node 20 has it behind a flag), plays the script. Node's WebSocket tells
 * no refusal's status: when the socket did not open, the same handshake is sent again with node:http to read it.
 */
async function socketTo(url: string, path: string, script: SocketScript): Promise<SocketResult> {
  const client = join(root, 'test', 'contracts', 'socket-client.ts');
  const args = ['--experimental-websocket', '--no-warnings', '--import', 'tsx', client];
  const { stdout } = await run(
    process.execPath,
    [...args, `${url.replace('http', 'ws')}${path}`, JSON.stringify(script)],
    {
      cwd: root,
      timeout: 30_000,
    },
  );
  const result = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as SocketResult & { failed?: string };
  if (!result.failed) return result;
  const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const headers = {
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-version': '13',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    };
    const req = request(`${url}${path}`, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('upgrade', () => reject(new Error(`${result.failed}, yet the handshake succeeds`)));
    req.on('error', reject);
    req.end();
  });
  return { refused, frames: [], code: 0 };
}

const noMessages = '`deno serve` serves HTTP only: Deno has no queue';
targetContract('Deno (deno serve)', startDenoHost, { noMessages, streams: true }).run();
