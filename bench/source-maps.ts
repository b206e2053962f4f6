/**
 * What source maps cost a one-shot start, side by side in one run:
 * - `micro-fn invoke` with maps as they are now (default: a stack formatter that reads the map only when a stack is
 *   formatted), with --no-source-maps, and with Node's eager maps (NODE_OPTIONS=--enable-source-maps: Node reads and
 *   parses a module's map as it loads);
 * - a function process's start: `node <bundle>` loading the bundle serve runs, with and without
 *   --enable-source-maps (under serve the map is read by serve, and only when a stack is logged).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLocal } from '../adapters/local/build.js';
import { resolveEntry } from '../adapters/kit/entry.js';
import { fmt, ratio, sideBySide, summarize } from './stats.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'cli', 'bin.mjs');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

const line = (label: string, samples: number[]) => {
  const s = summarize(samples);
  return `${label.padEnd(46)} p50 ${fmt(s.p50)}  p99 ${fmt(s.p99)}  (n=${s.n})`;
};

export async function benchSourceMaps(n = 30): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-'));
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, MICRO_FN_HOME: home };
  try {
    const invoke = [bin, 'invoke', 'examples/helloworld', 'Greeter.Hello', '{"name":"Ada"}'];
    await run(invoke, env); // builds the bundle once
    const [lazy, off] = await sideBySide(
      n,
      3,
      () => run(invoke, env),
      () => run([...invoke, '--no-source-maps'], env),
    );
    const [eager, off2] = await sideBySide(
      n,
      3,
      () => run(invoke, { ...env, NODE_OPTIONS: '--enable-source-maps' }),
      () => run([...invoke, '--no-source-maps'], env),
    );
    // The bundle a function process of serve loads (without MICRO_FN_IPC it loads and ends).
    const { file } = await buildLocal(resolveEntry(join(root, 'examples/helloworld')), { env });
    const [startEager, startOff] = await sideBySide(
      n,
      3,
      () => run(['--enable-source-maps', file], env),
      () => run([file], env),
    );
    const p50 = (s: number[]) => summarize(s).p50;
    return [
      line('micro-fn invoke, maps on (default, lazy)', lazy),
      line('micro-fn invoke --no-source-maps', off),
      `  lazy / off at p50: ${ratio(p50(lazy), p50(off))}  (target ≤ 1.03×)`,
      line('micro-fn invoke, Node eager (--enable-source-maps)', eager),
      line('micro-fn invoke --no-source-maps', off2),
      `  eager / off at p50: ${ratio(p50(eager), p50(off2))}`,
      line('function process start, --enable-source-maps', startEager),
      line('function process start, no maps (as under serve)', startOff),
      `  eager / off at p50: ${ratio(p50(startEager), p50(startOff))}`,
    ];
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
