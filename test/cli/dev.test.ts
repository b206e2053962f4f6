import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually } from '../helpers.js';

// ---
const dev = suite('micro-fn dev');
let scratch: ReturnType<typeof tempHome>;
let running: Running | undefined;
let env: Record<string, string>;

dev.before(() => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
});

dev.after.each(async () => {
  if (running && running.child.exitCode === null && running.child.signalCode === null) {
    running.child.kill('SIGTERM');
    await running.exited(15_000).catch(() => running?.kill());
  }
  running = undefined;
});

dev.after(() => scratch.cleanup());

const source = (name: string, word: string) =>
  `import { defineFunction } from 'micro-fn';\nexport default defineFunction({ name: '${name}', handlers: { Word: { Say: () => '${word}' } } });\n`;

function project(name: string, files: Record<string, string>): string {
  const dir = join(scratch.home, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const call = async (base: string, path: string) => {
  const res = await fetch(`${base}/${path}`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });
  return { status: res.status, text: await res.text() };
};

const closed = (url: string) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });

dev(
  'serves, deploys each function of a folder (1 of 2: the broken one is named, with how to retry), redeploys on change, logs each call, and Ctrl-C stops serve',
  async () => {
    const dir = project('two', {
      'word/index.ts': source('word', 'first'),
      'broken/index.ts': 'export default ;\n',
      'notes/README.md': 'not a function\n',
    });
    running = start(['dev', dir, '--address', '127.0.0.1:0'], env);
    const [, url] = await running.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000);
    await running.waitFor(/1 of 2 functions deployed/, 60_000);
    assert.match(running.stderr(), /deployed word \(Word\.Say\)/);
    assert.match(
      running.stderr(),
      /broken was not deployed: .*\n {2}fix it, then: micro-fn deploy .*broken.* --runtime http/,
    );
    assert.equal(await call(url!, 'word/Word.Say'), { status: 200, text: '"first"' });
    // serve's request log, in the same terminal.
    await eventually(() => /word Word\.Say 200 .*(cold|warm)/.test(running!.stdout()), 10_000, 'the request log line');

    writeFileSync(join(dir, 'word', 'index.ts'), source('word', 'second'));
    await running.waitFor(/rebuilt and redeployed word/, 30_000);
    await eventually(async () => (await call(url!, 'word/Word.Say')).text === '"second"', 15_000, 'the new version');

    running.child.kill('SIGINT');
    assert.is(await running.exited(20_000), 0, 'dev exits 0 on Ctrl-C');
    assert.ok(await closed(url!), "serve's gateway is closed: serve stopped with dev");
  },
);

dev('deploys a folder that is itself a function', async () => {
  const dir = project('one', { 'index.ts': source('single', 'only') });
  running = start(['dev', dir, '--address', '127.0.0.1:0'], env);
  const [, url] = await running.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000);
  await running.waitFor(/the function deployed/, 60_000);
  assert.equal(await call(url!, 'single/Word.Say'), { status: 200, text: '"only"' });
  running.child.kill('SIGTERM');
  assert.is(await running.exited(20_000), 0);
});

dev('refuses a folder without a function, and an address in use, in one line each', async () => {
  const empty = project('empty', { 'README.md': 'nothing here\n' });
  const none = await cli(['dev', empty, '--address', '127.0.0.1:0'], env);
  assert.is(none.code, 1);
  assert.match(none.stderr, /holds no function .*micro-fn new <name> makes one/);

  const dir = project('busy', { 'index.ts': source('busy', 'x') });
  running = start(['dev', dir, '--address', '127.0.0.1:0'], env);
  const [, url] = await running.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000);
  const second = await cli(['dev', dir, '--address', `127.0.0.1:${new URL(url!).port}`], env, { timeout: 30_000 });
  assert.is(second.code, 1, 'the second dev fails as its serve does');
  assert.match(second.stderr, /127\.0\.0\.1:\d+/);
});

dev.run();
