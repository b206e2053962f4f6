/**
 * The Lambda target, each figure against a baseline measured in the same run:
 *  (a) helloworld's bundle and function.zip, code and source map (issue 18's target: zip at most 30 KB), as built by
 *      default (minified) and with --no-minify;
 *  (b) cold start: from spawning an execution environment (the official aws-lambda-ric on the unpacked zip,
 *      pulling from a local Runtime API) to its first handled event, against plain `node` importing the same
 *      bundle and calling its handler with the same event; interleaved, side by side.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLambda } from '../adapters/lambda/build.js';
import { LambdaEnvironment, runtimeInterfaceClient } from '../serve/lambda/environment.js';
import { fmt, ratio, summarize } from './stats.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const EVENT = { endpoint: 'Greeter.Hello', body: { name: 'Ada' } };
const WARMUP = 3;
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

export async function benchLambda(n = 30): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-bench-lambda-'));
  try {
    const entry = join(root, 'examples', 'helloworld', 'index.ts');
    // No MICRO_* from the shell: helloworld as deployed without NATS.
    const plain = await buildLambda(entry, { outdir: join(dir, 'plain'), env: {} });
    const readable = await buildLambda(entry, { outdir: join(dir, 'readable'), minify: false, env: {} });
    const zipSize = plain.artifacts[0]!.size;
    const sizes = `(a) helloworld index.mjs ${kib(plain.size)}, function.zip ${zipSize} bytes (target ≤ 30 KB: ${zipSize <= 30_000 ? 'met' : 'MISSED'}); --no-minify ${kib(readable.size)} / ${kib(readable.artifacts[0]!.size)}`;
    if (!ricInstalled())
      return [
        sizes,
        '(b) skipped: the Lambda runtime interface client is not installed; run `npx micro-fn install lambda-runtime`',
      ];

    // Both sides start the same file: the bundle is what the zip holds, byte for byte.
    const taskRoot = join(dir, 'plain');
    const runner = join(dir, 'runner.mjs');
    writeFileSync(
      runner,
      `const { handler } = await import(${JSON.stringify(plain.file)});
const reply = await handler(${JSON.stringify(EVENT)}, { awsRequestId: 'bench', getRemainingTimeInMillis: () => 3000 });
process.stdout.write(JSON.stringify(reply));`,
    );
    const underRic = async () => {
      const t = performance.now();
      const env = await LambdaEnvironment.start({ taskRoot, functionName: 'helloworld' });
      try {
        const result = await env.invoke(EVENT);
        const ms = performance.now() - t;
        if (!('payload' in result) || !result.payload.includes('Hello Ada'))
          throw new Error(`unexpected result ${JSON.stringify(result)}`);
        return ms;
      } finally {
        await env.close();
      }
    };
    // Interleaved, alternating which goes first; each side times itself (the RIC's teardown is not counted).
    const ric: number[] = [];
    const node: number[] = [];
    const sides: [() => Promise<number>, number[]][] = [
      [underRic, ric],
      [() => plainNode(runner), node],
    ];
    for (let i = 0; i < WARMUP + n; i++) {
      for (const [measure, samples] of i % 2 ? sides : [...sides].reverse()) {
        const ms = await measure();
        if (i >= WARMUP) samples.push(ms);
      }
    }
    const a = summarize(ric);
    const b = summarize(node);
    return [
      sizes,
      `(b) start to first event, aws-lambda-ric   p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n})`,
      `    plain node, same bundle and event      p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
      `    ratio at p50: ${ratio(a.p50, b.p50)}`,
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function ricInstalled(): boolean {
  try {
    return Boolean(runtimeInterfaceClient());
  } catch {
    return false;
  }
}

/** Milliseconds from spawning `node runner` to its reply on stdout; resolves once the process is gone. */
function plainNode(runner: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(process.execPath, [runner], {
      env: { PATH: process.env.PATH ?? '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let ms: number | undefined;
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (ms === undefined && out.includes('Hello Ada')) ms = performance.now() - t;
    });
    child.on('error', reject);
    child.on('close', () => (ms === undefined ? reject(new Error(`no reply: ${out}`)) : resolve(ms)));
  });
}
