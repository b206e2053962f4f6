/**
 * What `micro-fn serve --auth` costs a call through the gateway: two serve processes on this machine, one with --auth
 * and one without, helloworld deployed to each, measured in turns so both see the same machine state:
 *  (a) warm-pool invocation p50/p99, each call with a full pool on both sides, the --auth side sending the same
 *      token every time (as a client does: verified once, then a map lookup) (target: ≤ 5% more at p50);
 *  (b) invocations per second at concurrency 8, in alternating slices.
 * BENCH_SECONDS sets the length of (b), 12 s by default.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCredential } from '../runtime/plugins/local/credential.js';
import { signToken, signingKey } from '../serve/auth/jwt.js';
import { cliRun, startServe, stopServe } from './serve.js';
import { poolFull } from './spawner.js';
import { fmt, summarize } from './stats.js';

const BODY = '{"name":"Ada"}';
const agent = new Agent({ keepAlive: true });

interface Side {
  name: string;
  home: string;
  gateway: string;
  headers: Record<string, string>;
}

function call(side: Side): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${side.gateway}/helloworld/Greeter.Hello`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY), ...side.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode} ${text}`))));
      },
    );
    req.on('error', reject);
    req.end(BODY);
  });
}

export async function benchAuth({ seconds = Number(process.env.BENCH_SECONDS ?? 12) } = {}): Promise<string[]> {
  const servers: ChildProcess[] = [];
  const homes: string[] = [];
  const side = async (name: string, args: string[], pool: number): Promise<Side> => {
    const home = mkdtempSync(join(tmpdir(), `micro-fn-bench-auth-${name}-`));
    homes.push(home);
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', MICRO_FN_HOME: home };
    const gateway = await startServe(['--pool', String(pool), '--concurrency', '8', ...args], env, servers);
    await cliRun(['deploy', 'examples/helloworld'], env);
    let headers: Record<string, string> = {};
    if (args.includes('--auth')) {
      const key = signingKey(readCredential(home)!.jwtKey);
      headers = { authorization: `Bearer ${await signToken(key, { subject: 'bench', scopes: ['user'], ttl: 3600 })}` };
    }
    return { name, home, gateway, headers };
  };
  try {
    // (a) two warm processes each; every call finds its pool full again.
    const sides = [await side('off', [], 2), await side('on', ['--auth'], 2)];
    const samples = new Map<Side, number[]>(sides.map((s) => [s, []]));
    for (let i = 0; i < 410; i++) {
      for (const s of i % 2 ? [...sides].reverse() : sides) {
        await poolFull(s.gateway, 'helloworld', 2, s.home);
        const t = performance.now();
        await call(s);
        if (i >= 10) samples.get(s)!.push(performance.now() - t);
      }
    }
    const [off, on] = sides.map((s) => summarize(samples.get(s)!)) as [
      ReturnType<typeof summarize>,
      ReturnType<typeof summarize>,
    ];
    await stopServe(servers);
    // (b) eight warm processes each, eight callers, alternating slices.
    const busy = [await side('off', [], 8), await side('on', ['--auth'], 8)];
    const rounds = 6;
    const totals = new Map<Side, number>(busy.map((s) => [s, 0]));
    for (let r = 0; r < rounds; r++)
      for (const s of r % 2 ? [...busy].reverse() : busy) {
        await rate(1, 8, () => call(s)); // uncounted: the pool it inherits full does not count
        totals.set(s, totals.get(s)! + (await rate(seconds / rounds, 8, () => call(s))) / rounds);
      }
    const [offRate, onRate] = busy.map((s) => totals.get(s)!) as [number, number];
    const more = (a: number, b: number) => `${(((a - b) / b) * 100).toFixed(1)}%`;
    return [
      `(a) warm-pool invocation via gateway, no --auth   p50 ${fmt(off.p50)}  p99 ${fmt(off.p99)}  (n=${off.n})`,
      `    with --auth (a bearer JWT, verified once)      p50 ${fmt(on.p50)}  p99 ${fmt(on.p99)}  (n=${on.n})`,
      `    --auth costs at p50: ${more(on.p50, off.p50)}, at p99: ${more(on.p99, off.p99)}  (target ≤ 5% at p50)`,
      `(b) invocations/s at concurrency 8, ${seconds} s each in ${rounds} alternating slices`,
      `    no --auth ${offRate.toFixed(1)}/s, --auth ${onRate.toFixed(1)}/s  (--auth: ${more(onRate, offRate)})`,
    ];
  } finally {
    await stopServe(servers);
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  }
}

/** Completed operations per second with `concurrency` loops for `seconds`. */
async function rate(seconds: number, concurrency: number, op: () => Promise<unknown>): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await op();
        done++;
      }
    }),
  );
  return done / seconds;
}
