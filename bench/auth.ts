/**
 * What `micro-fn serve --auth` costs a call through the gateway: two serve processes on this machine, one with --auth
 * and one without, helloworld deployed to each, measured in turns so both see the same machine state:
 *  (a) warm-pool invocation p50/p99, each call with a full pool on both sides, the --auth side sending the same
 *      token every time (as a client does: verified once, then a map lookup) (target: ≤ 5% more at p50);
 *  (b) invocations per second at concurrency 8, in alternating slices;
 *  (c) the check itself, in this process: Guard.call with a token seen before, per call, against the no --auth Guard
 *      (which returns at once): what --auth adds to a warm call, without the noise of processes and sockets.
 * BENCH_SECONDS sets the length of (b), 12 s by default.
 */
import { ok as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCredential } from '../runtime/plugins/local/credential.js';
import { Metadata } from '../runtime/core/metadata.js';
import { Guard } from '../serve/auth/guard.js';
import { signToken, signingKey } from '../serve/auth/jwt.js';
import { callHello, cliRun, startServe, stopServe } from './serve.js';
import { poolFull } from './spawner.js';
import { fmt, rate, summarize } from './stats.js';

interface Side {
  name: string;
  home: string;
  gateway: string;
  headers: Record<string, string>;
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
        await callHello(s.gateway, s.headers);
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
        await rate(1, 8, () => callHello(s.gateway, s.headers)); // uncounted: the pool it inherits full does not count
        totals.set(
          s,
          totals.get(s)! + (await rate(seconds / rounds, 8, () => callHello(s.gateway, s.headers))) / rounds,
        );
      }
    const [offRate, onRate] = busy.map((s) => totals.get(s)!) as [number, number];
    const more = (a: number, b: number) => `${(((a - b) / b) * 100).toFixed(1)}%`;
    const [checkOff, checkOn] = await checkCost(homes[0]!);
    return [
      `(a) warm-pool invocation via gateway, no --auth   p50 ${fmt(off.p50)}  p99 ${fmt(off.p99)}  (n=${off.n})`,
      `    with --auth (a bearer JWT, verified once)      p50 ${fmt(on.p50)}  p99 ${fmt(on.p99)}  (n=${on.n})`,
      `    --auth costs at p50: ${more(on.p50, off.p50)}, at p99: ${more(on.p99, off.p99)}  (target ≤ 5% at p50)`,
      `(b) invocations/s at concurrency 8, ${seconds} s each in ${rounds} alternating slices`,
      `    no --auth ${offRate.toFixed(1)}/s, --auth ${onRate.toFixed(1)}/s  (--auth: ${more(onRate, offRate)})`,
      `(c) the check per call, in process: no --auth ${ns(checkOff)}, --auth with a known token ${ns(checkOn)}` +
        `  (${((checkOn / off.p50) * 100).toFixed(3)}% of (a)'s p50)`,
    ];
  } finally {
    await stopServe(servers);
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  }
}

const ns = (ms: number) => `${(ms * 1e6).toFixed(0)} ns`;

/** Milliseconds per Guard.call: without --auth, and with --auth and a token it has verified before. */
async function checkCost(home: string): Promise<[number, number]> {
  const credential = readCredential(home)!;
  const quiet = () => {};
  const off = new Guard({ credential, home, tokens: false, say: quiet });
  const on = new Guard({ credential, home, tokens: true, say: quiet });
  try {
    const token = await signToken(signingKey(credential.jwtKey), { subject: 'bench', scopes: ['user'], ttl: 3600 });
    const metadata = new Metadata({ authorization: `Bearer ${token}` });
    assert(!(await on.call('helloworld', 'Greeter.Hello', metadata)), 'the token is accepted');
    const per = (guard: Guard) => {
      const n = 200_000;
      const t = performance.now();
      for (let i = 0; i < n; i++) if (guard.call('helloworld', 'Greeter.Hello', metadata)) throw new Error('refused');
      return (performance.now() - t) / n;
    };
    per(off);
    per(on); // warm both
    return [per(off), per(on)];
  } finally {
    on.close();
  }
}
