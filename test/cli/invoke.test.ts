import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { eventually, withTimeout } from '../helpers.js';
import { bin, cli, lastJson, root, start, tempHome } from './helpers.js';

// ---
const invoke = suite('micro-fn invoke');
let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
invoke.before(() => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
});
invoke.after(() => scratch.cleanup());

invoke('prints the reply of helloworld on stdout and exits 0', async () => {
  const r = await cli(['invoke', 'examples/helloworld', 'Greeter.Hello', '{"name":"Ada"}'], env);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '{"message":"Hello Ada"}\n');
});

invoke('prints the error JSON on stderr and exits 1 when the handler refuses the request', async () => {
  const r = await cli(['invoke', 'examples/helloworld', 'Greeter.Hello', '{}'], env);
  assert.is(r.code, 1);
  assert.is(r.stdout, '');
  assert.equal(lastJson(r.stderr), { id: 'helloworld', code: 400, detail: 'name is required', status: 'Bad Request' });
});

invoke('answers malformed JSON with 400 and an unknown endpoint with 404', async () => {
  const bad = await cli(['invoke', 'examples/helloworld', 'Greeter.Hello', '{"name":'], env);
  assert.is(bad.code, 1);
  assert.is((lastJson(bad.stderr) as { code: number }).code, 400);
  const unknown = await cli(['invoke', 'examples/helloworld', 'Greeter.Bye', '{}'], env);
  assert.is(unknown.code, 1);
  assert.is((lastJson(unknown.stderr) as { code: number }).code, 404);
});

invoke('reads the request from stdin with "-"', async () => {
  const r = await cli(['invoke', 'examples/helloworld', 'Greeter.Hello', '-'], env, { input: '{"name":"Grace"}' });
  assert.is(r.stdout, '{"message":"Hello Grace"}\n');
});

invoke('delivers one broker message with --topic, exit 1 when its handler failed', async () => {
  const ok = await cli(['invoke', 'examples/events', '--topic', 'user.created', '{"id":1}'], env);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /user 1 created/);
  const failed = await cli(['invoke', 'examples/events', '--topic', 'user.created', '{"id":"x"}'], env);
  assert.is(failed.code, 1);
  assert.is((lastJson(failed.stderr) as { code: number }).code, 400);
});

invoke('keeps stdout for the reply when the function logs, and hides a crash behind a 500', async () => {
  const talk = await cli(['invoke', 'test/fixtures/noisy', 'Noisy.Talk'], env);
  assert.is(talk.stdout, '{"ok":true}\n');
  assert.match(talk.stderr, /chatter on stdout/);
  const crash = await cli(['invoke', 'test/fixtures/noisy', 'Noisy.Crash'], env);
  assert.is(crash.code, 1);
  assert.equal(lastJson(crash.stderr), {
    id: 'noisy',
    code: 500,
    detail: 'internal server error',
    status: 'Internal Server Error',
  });
});

invoke('keeps stdout for the reply when the handler writes to process.stdout itself', async () => {
  const r = await cli(['invoke', 'test/fixtures/stuck', 'Stuck.Print'], env);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '{"ok":true}\n');
  assert.match(r.stderr, /raw write on stdout/);
  assert.match(r.stderr, /console\.log on stdout/);
});

invoke("exits 1 with a 500 error JSON on stderr when the handler's promise can never settle", async () => {
  const r = await cli(['invoke', 'test/fixtures/stuck', 'Stuck.Never'], env, { timeout: 10_000 });
  assert.is(r.code, 1);
  assert.is(r.stdout, '');
  const error = lastJson(r.stderr) as { code: number; detail: string };
  assert.is(error.code, 500);
  assert.match(error.detail, /never settled/);
});

invoke(
  'exits 124 with a 408 error JSON at --timeout, a pending timer or not, within the timeout and the grace',
  async () => {
    for (const endpoint of ['Stuck.Timer', 'Stuck.Never']) {
      const started = Date.now();
      // Killed at 10 s: the timeout (0.5 s), the grace (1 s) and a start are far less.
      const r = await cli(['invoke', 'test/fixtures/stuck', endpoint, '--timeout', '500ms'], env, { timeout: 10_000 });
      assert.is(r.code, 124, `${endpoint}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.equal(lastJson(r.stderr), {
        id: 'stuck',
        code: 408,
        detail: `${endpoint} did not finish before its deadline`,
        status: 'Request Timeout',
      });
      assert.ok(Date.now() - started >= 500, 'not before the deadline');
    }
  },
);

invoke("fires the handler's signal at --timeout", async () => {
  const r = await cli(['invoke', 'test/fixtures/stuck', 'Stuck.Aware', '--timeout', '300ms'], env, { timeout: 10_000 });
  assert.is(r.code, 124);
  assert.match(r.stderr, /signal fired: 408/);
  assert.is((lastJson(r.stderr) as { code: number }).code, 408);
});

invoke('gives the handler a client that reaches the configured registry and broker', async () => {
  const r = await cli(['invoke', 'test/fixtures/caller', 'Caller.Out'], env);
  assert.is(r.code, 0, r.stderr);
  // No `micro-fn serve` runs, so the local broker is unavailable (503); nobody is registered (404).
  assert.equal(JSON.parse(r.stdout), { published: 503, called: 404 });
});

invoke('bundles a CommonJS dependency that calls require()', async () => {
  const r = await cli(['invoke', 'test/fixtures/cjs', 'Cjs.Platform'], env);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, `${JSON.stringify(process.platform)}\n`);
});

invoke('rebuilds when the function file changes', async () => {
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const dir = `${scratch.home}/fn`;
  mkdirSync(dir, { recursive: true });
  const write = (word: string) =>
    writeFileSync(
      `${dir}/index.ts`,
      `import { defineFunction } from 'micro-fn';\nexport default defineFunction({ name: 'w', handlers: { W: { Say: () => '${word}' } } });\n`,
    );
  write('first');
  assert.is((await cli(['invoke', dir, 'W.Say'], env)).stdout, '"first"\n');
  write('second!');
  assert.is((await cli(['invoke', dir, 'W.Say'], env)).stdout, '"second!"\n');
});

invoke('prints one clear line for a user mistake, no stack', async () => {
  const cases: [string[], RegExp][] = [
    [['invoke', 'nope', 'A.B'], /^micro-fn: nope: no such file or folder\n$/],
    [['invoke', 'examples/helloworld'], /^micro-fn: invoke needs an endpoint/],
    [['invoke', 'examples/helloworld', 'Hello'], /is not an endpoint: use Service.Method/],
    [
      ['invoke', 'examples/helloworld', 'Greeter.Hello', '--bogus'],
      /^micro-fn: unknown option --bogus \(see micro-fn invoke --help\)/,
    ],
    [['invoke', 'test/fixtures/no-default', 'A.B'], /must `export default defineFunction/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ];
  for (const [args, pattern] of cases) {
    const r = await cli(args, env);
    assert.is(r.code, 1, args.join(' '));
    assert.match(r.stderr, pattern, args.join(' '));
    assert.not.match(r.stderr, /\n\s+at /, `no stack for ${args.join(' ')}`);
  }
  const timeout = await cli(['invoke', 'examples/helloworld', 'Greeter.Hello', '{}'], {
    ...env,
    MICRO_FN_TIMEOUT: 'soon',
  });
  assert.is(timeout.code, 1);
  assert.match(timeout.stderr, /^micro-fn: MICRO_FN_TIMEOUT must be a duration like 30s, 500ms or 30000/);
  assert.not.match(timeout.stderr, /\n\s+at /, 'no stack for MICRO_FN_TIMEOUT=soon');
});

invoke('prints the error JSON for a user mistake with --json', async () => {
  const r = await cli(['invoke', 'nope', 'A.B', '--json'], env);
  assert.equal(JSON.parse(r.stderr), {
    id: 'micro-fn',
    code: 400,
    detail: 'nope: no such file or folder',
    status: 'Bad Request',
  });
});

invoke('has --help for itself and for the CLI', async () => {
  for (const args of [['invoke', '--help'], ['run', '-h'], ['--help'], ['help', 'invoke']]) {
    const r = await cli(args, env);
    assert.is(r.code, 0, args.join(' '));
    assert.match(r.stdout, /Usage: micro-fn/);
  }
});

invoke("keeps all of the function's output when stderr's reader lags: 5,000 lines read after a 1 s pause", async () => {
  const child = spawn(
    process.execPath,
    [bin, 'invoke', 'test/fixtures/numbered', 'Numbered.Print', '{"from":1,"count":5000}'],
    {
      cwd: root,
      env: { ...process.env, NODE_OPTIONS: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // 'close': the process exited and its stdio closed (registered now: it may come while the test waits below).
  const exited = new Promise((resolve) => child.once('close', resolve));
  child.stderr!.pause(); // nothing read: the socket pair fills, and the rest waits in the child
  await new Promise((resolve) => setTimeout(resolve, 1000)); // a timer that holds the test process meanwhile
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stderr!.resume();
  child.stdout!.resume();
  const code = await withTimeout(exited, 20_000, 'invoke');
  assert.is(code, 0, err.slice(-500));
  const numbers = [...err.matchAll(/^n=(\d+)$/gm)].map((m) => Number(m[1]));
  assert.is(numbers.length, 5000);
  assert.is(numbers.at(-1), 5000);
});

invoke.run();

// ---
const streams = suite('micro-fn invoke: streams');
streams.before(() => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
});
streams.after(() => scratch.cleanup());

streams('prints a server stream one JSON value per line (3 values) and exits 0', async () => {
  const r = await cli(['invoke', 'test/fixtures/streams', 'S.Count', '{"count":3}'], env);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.is(lines.length, 3);
  assert.equal(lines.slice(1), ['{"i":1}', '{"i":2}']);
});

streams('sums a client stream of 1,000 numbers read from stdin as NDJSON', async () => {
  const input = Array.from({ length: 1000 }, (_, i) => `${i + 1}\n`).join('');
  const r = await cli(['invoke', 'test/fixtures/streams', 'S.Sum'], env, { input });
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { sum: 500500, count: 1000 });
});

streams('echoes a bidi stream from stdin in order (3 messages)', async () => {
  const r = await cli(['invoke', 'test/fixtures/streams', 'S.Echo'], env, { input: '"a"\n{"b":1}\n\n3\n' });
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '"a"\n{"b":1}\n3\n');
});

streams('an error mid-stream: the 2 lines before it on stdout, the error JSON on stderr, exit 1', async () => {
  const r = await cli(['invoke', 'test/fixtures/streams', 'S.Fail', '{"after":2}'], env);
  assert.is(r.code, 1);
  assert.is(r.stdout, '{"i":0}\n{"i":1}\n');
  assert.equal(lastJson(r.stderr), { id: 'streams', code: 400, detail: 'failed after 2', status: 'Bad Request' });
});

streams(
  'refuses a json argument for a client stream, and a stdin line that is not JSON, in one line each',
  async () => {
    const arg = await cli(['invoke', 'test/fixtures/streams', 'S.Sum', '{}'], env);
    assert.is(arg.code, 1);
    assert.match(arg.stderr, /S\.Sum takes a client stream: pipe its messages to stdin/);
    const bad = await cli(['invoke', 'test/fixtures/streams', 'S.Sum'], env, { input: '1\nnope\n' });
    assert.is(bad.code, 1);
    assert.match(bad.stderr, /stdin line 2 is not JSON/);
  },
);

streams('a reader of stdout that goes (| head -2) ends the stream: its handler returns, exit 0, no EPIPE', async () => {
  const run = start(['invoke', 'test/fixtures/streams', 'S.Forever', '{}'], env);
  try {
    await eventually(() => run.stdout().split('\n').length > 2, 20_000, 'two lines on stdout');
    run.child.stdout!.destroy(); // the reader goes; the endless stream's next write finds no one
    assert.is(await run.exited(15_000), 0, run.stderr());
    assert.match(run.stderr(), /generator returned/);
    assert.not.match(run.stderr(), /EPIPE|Error/);
  } finally {
    run.kill();
  }
});

streams.run();
