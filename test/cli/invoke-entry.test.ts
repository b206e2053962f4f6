/**
 * `micro-fn invoke`'s entry of its own (cli/invoke-main.ts, built to dist/cli/invoke.cjs, which bin.cjs requires for
 * that command): what it prints and how it exits are the ES module CLI's (dist/cli/main.js) and the older bin.mjs's.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withTimeout } from '../helpers.js';
import { bin, cli, root, tempHome, type Result } from './helpers.js';

/** The three ways to start the CLI: the bin, bin.mjs, and the ES module CLI's main() without the bin. */
const VIA: Record<string, string[]> = {
  'bin.cjs': [bin],
  'bin.mjs': [join(root, 'cli', 'bin.mjs')],
  'main.js': [
    '--input-type=module',
    '-e',
    `import(${JSON.stringify(pathToFileURL(join(root, 'dist', 'cli', 'main.js')).href)}).then((cli) => cli.main(process.argv.slice(1)))`,
  ],
};

// ---
const same = suite('invoke through bin.cjs, bin.mjs and main.js');
let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
same.before(() => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
});
same.after(() => scratch.cleanup());

/** Runs `args` each way and checks they all print and exit as the first did; returns that result. */
async function agree(args: string[], input?: string): Promise<Result> {
  const results: Record<string, Result> = {};
  for (const [name, via] of Object.entries(VIA)) results[name] = await cli(args, env, { via, input });
  const first = results['bin.cjs']!;
  for (const [name, r] of Object.entries(results)) assert.equal(r, first, `${name} differs from bin.cjs`);
  return first;
}

same('a reply: the same stdout, exit 0 (a cache miss first, then hits)', async () => {
  const r = await agree(['invoke', 'examples/helloworld', 'Greeter.Hello', '{"name":"Ada"}']);
  assert.equal(r, { code: 0, stdout: '{"message":"Hello Ada"}\n', stderr: '' });
});

same("a handler's error: the same error JSON on stderr, exit 1; with --json too", async () => {
  for (const extra of [[], ['--json']]) {
    const r = await agree(['invoke', 'examples/helloworld', 'Greeter.Hello', '{}', ...extra]);
    assert.is(r.code, 1);
    assert.match(r.stderr, /"detail":"name is required"/);
  }
});

same("a user's mistake: the same one line, exit 1; error JSON with --json (4)", async () => {
  const lines = [
    await agree(['invoke', 'examples/helloworld', 'Greeter.Hello', '--bogus']),
    await agree(['invoke', 'examples/helloworld']),
    await agree(['invoke', 'examples/nowhere', 'Greeter.Hello']),
    await agree(['invoke', 'examples/helloworld', 'Greeter.Hello', '--timeout', 'soon', '--json']),
  ];
  for (const r of lines) assert.is(r.code, 1);
  assert.match(lines[0]!.stderr, /^micro-fn: unknown option --bogus/);
  assert.match(lines[1]!.stderr, /needs an endpoint like Greeter\.Hello/);
  assert.match(lines[2]!.stderr, /no such file or folder/);
  assert.match(lines[3]!.stderr, /^\{"id":"micro-fn","code":400,"detail":"--timeout takes a duration/);
});

same('--help: the same text, exit 0', async () => {
  const r = await agree(['invoke', '--help']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /^Usage: micro-fn invoke <entry>/);
  assert.match(r.stdout, /--registry NAME +registry: local \(default\)/); // the plugin names, read lazily
});

same('what the function writes to stdout goes to stderr the same way', async () => {
  const r = await agree(['invoke', 'test/fixtures/stuck', 'Stuck.Print']);
  assert.is(r.stdout, '{"ok":true}\n');
  assert.match(r.stderr, /raw write on stdout/);
});

same('a client stream read from stdin: the same reply', async () => {
  const r = await agree(['invoke', 'examples/stream', 'Numbers.Sum'], '1\n2\n3\n');
  assert.is(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), { sum: 6, count: 3 });
});

same('bin.cjs runs the entry with its code cache: after an invoke, the bytecode of what it ran', async () => {
  const script = join(root, 'dist', 'cli', 'invoke.cjs');
  const cacheFile = `${script}.${process.version}-${process.arch}.cache`;
  const hash = /\/\/# micro-fn-bundle ([0-9a-f]{64})\n$/.exec(readFileSync(script, 'utf8'))?.[1];
  assert.ok(hash, 'build.mjs named the hash of the entry');
  rmSync(cacheFile, { force: true }); // a start without it compiles from source, and leaves it as it exits
  const r = await cli(['invoke', 'examples/helloworld', 'Greeter.Hello', '{"name":"Ada"}'], env);
  assert.is(r.stdout, '{"message":"Hello Ada"}\n', r.stderr);
  const data = readFileSync(cacheFile);
  assert.is(data.toString('latin1', 0, data.indexOf(10)), `micro-fn code cache 1 ${hash} run`);
});

same.run();

// ---
const reply = suite('the reply on stdout');
reply.before(() => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
});
reply.after(() => scratch.cleanup());

reply('4 MiB arrive whole when stdout and stderr are one pipe that the log made non-blocking', async () => {
  // 2>&1: process.stderr, made for the log line, sets O_NONBLOCK on the pipe stdout shares, so writing the reply
  // straight to descriptor 1 meets a full pipe (EAGAIN) and the stream must write the rest.
  const out = await withTimeout(
    new Promise<{ code: number | null; text: string }>((resolve, reject) => {
      const child = spawn(
        '/bin/sh',
        ['-c', `exec "$0" "$1" invoke test/fixtures/big Big.Logged 2>&1`, process.execPath, bin],
        {
          cwd: root,
          env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let text = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, text }));
    }),
    60_000,
    'invoke of a 4 MiB reply',
  );
  assert.is(out.code, 0, out.text.slice(0, 500));
  const lines = out.text.split('\n');
  assert.is(lines[0], 'a line before the reply');
  assert.is(lines[1]!.length, JSON.stringify({ data: 'x'.repeat(4 << 20) }).length);
  assert.equal(lines.slice(2), ['']);
});

reply.run();
