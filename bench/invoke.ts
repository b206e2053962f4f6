/**
 * `micro-fn invoke` wall time (a fresh process per call, bundle cache warm) against `node -e 0`, side by side.
 * Target (issue 18): invoke ≤ 1.5× node -e 0. The command is package.json's bin (what `micro-fn` runs); the older
 * name, cli/bin.mjs, is measured beside it: the same code behind an ES module, Node's ES module loader included.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, ratio, sideBySide, summarize } from './stats.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
const bin = join(root, pkg.bin['micro-fn']!);
const binMjs = join(root, 'cli', 'bin.mjs');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

export async function benchInvoke(n = 30): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-'));
  // Only what a user's shell would pass; no NODE_OPTIONS from a test runner.
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, MICRO_FN_HOME: home };
  try {
    const args = ['invoke', 'examples/helloworld', 'Greeter.Hello', '{"name":"Ada"}'];
    const invokeArgs = [bin, ...args];
    const cold = performance.now();
    const out = await run(invokeArgs, env);
    const coldMs = performance.now() - cold;
    if (out.trim() !== '{"message":"Hello Ada"}') throw new Error(`unexpected reply ${out}`);
    const [inv, bare] = await sideBySide(
      n,
      3,
      () => run(invokeArgs, env),
      () => run(['-e', '0'], env),
    );
    const [mjs, bare2] = await sideBySide(
      n,
      3,
      () => run([binMjs, ...args], env),
      () => run(['-e', '0'], env),
    );
    const a = summarize(inv);
    const b = summarize(bare);
    const c = summarize(mjs);
    const d = summarize(bare2);
    return [
      `micro-fn invoke (first run, builds the bundle): ${fmt(coldMs)}`,
      `micro-fn invoke, cached bundle    p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n}; ${pkg.bin['micro-fn']})`,
      `node -e 0                         p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
      `ratio invoke / node -e 0 at p50: ${ratio(a.p50, b.p50)}  (target ≤ 1.5×)`,
      `through cli/bin.mjs (an ES module): p50 ${fmt(c.p50)} vs node -e 0 ${fmt(d.p50)}: ${ratio(c.p50, d.p50)}`,
    ];
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
