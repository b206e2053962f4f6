/**
 * Cold starts of a bundle of over 1 MB (bench/fixtures/aws-sdk: a function importing the AWS SDK's Lambda client)
 * and of helloworld, each against plain `node` starting the same code as an ES module bundle (index.mjs, built
 * without the script and code cache), side by side in one run:
 *  (a) a process that loads the bundle the way a function process does (adapters/local/code-cache.cjs: the script
 *      with its V8 code cache) and answers one invocation on stdout, vs plain node importing index.mjs and answering;
 *  (b) the ≥ 1 MB function called cold through `micro-fn serve --pool 0` vs plain node (target ≤ 0.8×).
 * BENCH_PARTS=a (letters) runs only some of them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLocal } from '../adapters/local/build.js';
import { cliRun, postJson, root, startServe, stopServe } from './serve.js';
import { fmt, ratio, sideBySide, summarize } from './stats.js';

interface Case {
  name: string;
  fixture: string;
  endpoint: string;
  body: string;
  /** Text the reply holds. */
  expect: string;
}

const CASES: Case[] = [
  {
    name: 'aws-sdk',
    fixture: 'bench/fixtures/aws-sdk',
    endpoint: 'Lambda.Client',
    body: '{}',
    expect: 'ListFunctionsCommand',
  },
  {
    name: 'helloworld',
    fixture: 'examples/helloworld',
    endpoint: 'Greeter.Hello',
    body: '{"name":"Ada"}',
    expect: 'Hello Ada',
  },
];

export async function benchColdBundle({ parts = process.env.BENCH_PARTS ?? 'ab', n = 30 } = {}): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-'));
  // What a function process gets: MICRO_* only (no NODE_EXTRA_CA_CERTS and the like), for both sides.
  const fnEnv = { MICRO_FN_HOME: home, MICRO_REGISTRY: 'local', MICRO_BROKER: 'local', ...quietSdk };
  const cliEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MICRO_FN_HOME: home, ...quietSdk };
  const out: string[] = [];
  const servers: ChildProcess[] = [];
  try {
    for (const c of CASES) {
      const entry = join(root, c.fixture, 'index.ts');
      const plain = await buildLocal(entry, { outdir: join(home, c.name, 'plain'), codeCache: false });
      const ours = await buildLocal(entry, { outdir: join(home, c.name, 'cached') });
      const invoke = `m.invokeOnce(m.definition, { endpoint: ${JSON.stringify(c.endpoint)}, body: new TextEncoder().encode(${JSON.stringify(c.body)}) }, process.env).then((r) => process.stdout.write(new TextDecoder().decode(r.body) + '\\n'));`;
      const plainRunner = join(home, c.name, 'plain.mjs');
      writeFileSync(plainRunner, `const m = await import(${JSON.stringify(plain.file)});\n${invoke}`);
      // The way serve/bootstrap.cjs and micro-fn invoke load a bundle.
      const ourRunner = join(home, c.name, 'ours.cjs');
      writeFileSync(
        ourRunner,
        `const loaded = require(${JSON.stringify(join(root, 'adapters', 'local', 'code-cache.cjs'))}).loadBeside(${JSON.stringify(ours.file)});
if (!loaded || loaded.cache !== 'accepted') throw new Error('the code cache was not used: ' + (loaded && loaded.cache));
const m = loaded.exports;\n${invoke}`,
      );
      const base = () => timed(process.execPath, [plainRunner], fnEnv, c.expect);
      if (parts.includes('a')) {
        const [a, b] = await sideBySide(n, 3, () => timed(process.execPath, [ourRunner], fnEnv, c.expect), base);
        const sa = summarize(a);
        const sb = summarize(b);
        out.push(
          `(a) ${c.name} (${kib(ours.size)}): a process starting it with its code cache   p50 ${fmt(sa.p50)}  p99 ${fmt(sa.p99)}  (n=${sa.n})`,
          `    plain node importing index.mjs                                  p50 ${fmt(sb.p50)}  p99 ${fmt(sb.p99)}`,
          `    ratio at p50: ${ratio(sa.p50, sb.p50)}`,
        );
      }
      if (parts.includes('b') && c.name === 'aws-sdk') {
        const gateway = await startServe(['--pool', '0'], cliEnv, servers);
        await cliRun(['deploy', c.fixture], cliEnv);
        const url = `${gateway}/${c.name}/${c.endpoint}`;
        const [a, b] = await sideBySide(n, 3, () => post(url, c.body, c.expect), base);
        await stopServe(servers);
        const sa = summarize(a);
        const sb = summarize(b);
        out.push(
          `(b) ${c.name}: cold invocation via gateway (--pool 0)   p50 ${fmt(sa.p50)}  p99 ${fmt(sa.p99)}  (n=${sa.n})`,
          `    plain node starting index.mjs                       p50 ${fmt(sb.p50)}  p99 ${fmt(sb.p99)}`,
          `    ratio at p50: ${ratio(sa.p50, sb.p50)}  (target ≤ 0.8×)`,
        );
      }
    }
    return out;
  } finally {
    await stopServe(servers);
    rmSync(home, { recursive: true, force: true });
  }
}

/** The SDK's notice that its 2027 releases need Node 22 (9 lines on stderr per start), off on both sides. */
const quietSdk = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`;

/** Runs `cmd` until its reply is on stdout (holding `expect`); the milliseconds that took. */
function timed(cmd: string, args: string[], env: Record<string, string>, expect: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.stdout.on('end', () =>
      out.includes(expect) ? resolve(performance.now() - t) : reject(new Error(`no reply: ${out}`)),
    );
  });
}

async function post(url: string, body: string, expect: string): Promise<void> {
  const text = await postJson(url, body);
  if (!text.includes(expect)) throw new Error(`200 without ${expect}: ${text}`);
}
