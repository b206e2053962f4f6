/**
 * Source maps by default, end to end as processes: a function that throws from a known line of its index.ts, run by
 * a real `micro-fn serve` (called through the gateway, read back with `micro-fn logs`), by `micro-fn invoke`, and by
 * the local Lambda API (the official runtime interface client). Each stack must name index.ts at the line of the
 * `throw`; with --no-source-maps, the bundle.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, dummyAws, root, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';
import { ricAvailable } from '../adapters/lambda/helpers.js';

const fixture = 'test/fixtures/thrower';
const source = readFileSync(join(root, fixture, 'index.ts'), 'utf8').split('\n');
/** The 1-based line of the `throw` (and of the logged error), read from the file: the test moves with it. */
const lineOf = (text: string) => source.findIndex((l) => l.includes(text)) + 1;
const THROW = lineOf("throw new Error('thrown on purpose')");
const LOGGED = lineOf("console.error(new Error('logged on purpose'))");
/** A frame of the fixture's source at `line`. */
const atSource = (line: number) => new RegExp(`thrower/index\\.ts:${line}:\\d+`);

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

// ---
const serve = suite('micro-fn serve: a function that throws');
let running: Running;
let gateway: string;

serve.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  running = start(['serve', '--address', '127.0.0.1:0'], env);
  gateway = (await running.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  await ok(['deploy', fixture]);
});

serve.after(async () => {
  running.child.kill('SIGTERM');
  await running.exited(10_000).catch(() => running.kill());
  scratch.cleanup();
});

serve('its stack, in `micro-fn logs` and on serve stdout, names index.ts at the line of the throw', async () => {
  const reply = await withTimeout(
    fetch(`${gateway}/thrower/Thrower.Throw`, { method: 'POST', body: '{}' }),
    15_000,
    'call thrower',
  );
  assert.is(reply.status, 500);
  await reply.text();
  let logged = '';
  await eventually(
    async () => {
      logged = (await ok(['logs', 'thrower'])).stdout;
      return logged.includes('thrown on purpose');
    },
    10_000,
    'the error in the log',
    300,
  );
  assert.match(logged, atSource(THROW), `the log names index.ts:${THROW}: ${logged}`);
  assert.not.match(logged, /index\.[cm]js:\d+/, 'no frame of the bundle is left');
  await eventually(() => atSource(THROW).test(running.stdout()), 5000, `serve's stdout names index.ts:${THROW}`);
  // Mapped by serve as it logs, not in the one-shot process: Node there does not read the map as the bundle loads.
  const maps = await withTimeout(
    fetch(`${gateway}/thrower/Thrower.Maps`, { method: 'POST', body: '{}' }).then((r) => r.json()),
    15_000,
    'call thrower',
  );
  assert.equal(maps, { enabled: false }, 'Node does not map stacks in the function process');
});

serve.run();

// ---
const invoke = suite('micro-fn invoke: a function that throws');

invoke.before(() => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
});
invoke.after(() => scratch.cleanup());

invoke('a thrown error and a logged one name index.ts at their lines, by default and with --source-maps', async () => {
  const thrown = await cli(['invoke', fixture, 'Thrower.Throw'], env, { timeout: 60_000 });
  assert.is(thrown.code, 1, thrown.stderr);
  assert.match(thrown.stderr, atSource(THROW), `index.ts:${THROW} in: ${thrown.stderr}`);
  for (const flags of [[], ['--source-maps']]) {
    const logged = await ok(['invoke', ...flags, fixture, 'Thrower.Log']);
    assert.match(logged.stderr, atSource(LOGGED), `${flags.join(' ')}: index.ts:${LOGGED} in: ${logged.stderr}`);
    assert.not.match(logged.stderr, /index\.[cm]js:\d+/, 'no frame of the bundle is left');
  }
});

invoke('with --no-source-maps, the stack names the bundle', async () => {
  const logged = await ok(['invoke', '--no-source-maps', fixture, 'Thrower.Log']);
  assert.match(logged.stderr, /index\.[cm]js:\d+:\d+/, logged.stderr);
  assert.not.match(logged.stderr, /thrower\/index\.ts/, logged.stderr);
});

invoke.run();

// ---
const lambda = suite('the local Lambda API: a function that throws');
let lambdaServe: Running;
let lambdaGateway: string;

lambda.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home, ...dummyAws };
  lambdaServe = start(['serve', '--address', '127.0.0.1:0'], env);
  lambdaGateway = (await lambdaServe.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
});

lambda.after(async () => {
  lambdaServe.child.kill('SIGTERM');
  await lambdaServe.exited(15_000).catch(() => lambdaServe.kill());
  scratch.cleanup();
});

lambda(
  'Node maps its stacks there (--enable-source-maps), and `micro-fn logs` names index.ts at the line of the throw',
  async () => {
    await ok(['deploy', fixture, '--target', 'lambda', '--endpoint', lambdaGateway]);
    const maps = await ok(['call', 'thrower', 'Thrower.Maps', '{}']);
    assert.equal(JSON.parse(maps.stdout), { enabled: true }, 'Node in the environment maps stacks itself');
    const failed = await cli(['call', 'thrower', 'Thrower.Throw', '{}'], env, { timeout: 60_000 });
    assert.is(failed.code, 1, failed.stderr);
    let logged = '';
    await eventually(
      async () => {
        logged = (await ok(['logs', 'thrower'])).stdout;
        return logged.includes('thrown on purpose');
      },
      15_000,
      'the error in the log',
      300,
    );
    assert.match(logged, new RegExp(`index\\.ts:${THROW}:\\d+`), `the log names index.ts:${THROW}: ${logged}`);
    assert.not.match(logged, /index\.mjs:\d+/, 'no frame of the bundle is left');
  },
);

if (ricAvailable()) lambda.run();
