/**
 * `micro-fn logs -f` as a real process following a real serve whose log files rotate every 1 KiB (about 11 lines): a
 * function prints numbered lines through the gateway; the follower must print each number once, in order, across
 * many rotations between two of its reads, and when it was stopped (SIGSTOP) past --log-files rotations, say in one
 * line that lines were rotated away, then go on.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;
let follower: Running | undefined;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

/** Has the function print `count` numbered lines from `from` (one invocation). */
const print = (from: number, count: number) =>
  withTimeout(
    fetch(`${gateway}/numbered/Numbered.Print`, {
      method: 'POST',
      body: JSON.stringify({ from, count }),
      headers: { 'content-type': 'application/json' },
    }).then(async (r) => assert.is(r.status, 200, await r.text())),
    15_000,
    'call numbered',
  );

/** The numbers the follower printed, in its order. */
const printed = () => [...follower!.stdout().matchAll(/stdout: n=(\d+)$/gm)].map((m) => Number(m[1]));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function startServe(logFiles: number): Promise<void> {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(
    ['serve', '--address', '127.0.0.1:0', '--quiet', '--log-size', '1KiB', '--log-files', String(logFiles)],
    env,
  );
  gateway = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  await ok(['deploy', 'test/fixtures/numbered', '--pool', '1']);
  follower = start(['logs', '-f', 'numbered'], env);
  // Its first lines show it is following.
  await print(0, 1);
  await eventually(() => printed().length === 1, 10_000, 'the follower prints line 0', 50);
}

async function stop(): Promise<void> {
  if (follower) {
    follower.child.kill('SIGCONT');
    follower.child.kill('SIGTERM');
    await follower.exited(5000).catch(() => follower!.kill());
    follower = undefined;
  }
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
}

// ---
const kept = suite('micro-fn logs -f, every rotated file it needs kept (--log-files 500)');
kept.before(() => startServe(500));
kept.after(stop);

kept('1000 numbers printed 100 an invocation (some 9 rotations each): each once, in order', async () => {
  for (let from = 1; from < 1001; from += 100) await print(from, 100);
  await eventually(() => printed().at(-1) === 1000, 15_000, 'the follower prints line 1000', 50);
  assert.equal(printed(), range(0, 1000), 'numbers 0 to 1000, each once, in order');
  assert.not.match(follower!.stderr(), /rotated away/);
});

kept.run();

// ---
const stalled = suite('micro-fn logs -f, stopped past --log-files rotations (--log-files 2)');
stalled.before(() => startServe(2));
stalled.after(stop);

stalled('says lines were rotated away, skips them, and prints every line after once, in order', async () => {
  follower!.child.kill('SIGSTOP');
  // About 27 rotations while it cannot read: far more than the 2 files kept.
  await print(1, 300);
  follower!.child.kill('SIGCONT');
  await eventually(() => printed().at(-1) === 300, 15_000, 'the follower prints line 300', 50);
  const away = await follower!.waitFor(
    /micro-fn logs: lines of numbered were rotated away before they were read \((\d+) files?/,
    5000,
  );
  const numbers = printed();
  const skipped = 301 - numbers.length;
  assert.ok(skipped > 0 && Number(away[1]) > 0, `${skipped} lines of ${away[1]} files skipped`);
  for (let i = 1; i < numbers.length; i++)
    assert.ok(numbers[i]! > numbers[i - 1]!, `${numbers[i]} after ${numbers[i - 1]}`);
  // After it, lines reach it again.
  await print(301, 5);
  await eventually(() => printed().at(-1) === 305, 10_000, 'the follower prints line 305', 50);
  assert.equal(printed().slice(-5), range(301, 305));
});

stalled.run();
