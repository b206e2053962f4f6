import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually } from '../helpers.js';

// ---
const watch = suite('micro-fn serve --watch');
let scratch: ReturnType<typeof tempHome>;
let serve: Running;
let env: Record<string, string>;

watch.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--watch'], env);
  await serve.waitFor(/listening on/);
});

watch.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10000).catch(() => serve.kill());
  scratch.cleanup();
});

watch('rebuilds and redeploys a function when its file changes', async () => {
  const dir = join(scratch.home, 'src', 'word');
  mkdirSync(dir, { recursive: true });
  const write = (word: string) =>
    writeFileSync(
      join(dir, 'index.ts'),
      `import { defineFunction } from 'micro-fn';\nexport default defineFunction({ name: 'word', handlers: { Word: { Say: () => '${word}' } } });\n`,
    );
  write('first');
  assert.is((await cli(['deploy', dir], env)).code, 0);
  assert.is((await cli(['call', 'word', 'Word.Say'], env)).stdout, '"first"\n');
  write('second');
  await serve.waitFor(/rebuilt and redeployed word/, 15000);
  await eventually(
    async () => (await cli(['call', 'word', 'Word.Say'], env)).stdout === '"second"\n',
    10000,
    'the new version answers',
  );
});

watch('keeps seeing its file through 3 atomic saves and a delete + re-create: 4 of 4 changes redeployed', async () => {
  const dir = join(scratch.home, 'src', 'atomic');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'index.ts');
  const source = (word: string) =>
    `import { defineFunction } from 'micro-fn';\nexport default defineFunction({ name: 'atomic', handlers: { Word: { Say: () => '${word}' } } });\n`;
  const redeploys = () => (serve.stderr().match(/rebuilt and redeployed atomic/g) ?? []).length;
  const says = async (word: string) =>
    eventually(
      async () => (await cli(['call', 'atomic', 'Word.Say'], env)).stdout === `"${word}"\n`,
      15_000,
      `atomic says ${word}`,
      100,
    );
  writeFileSync(file, source('v0'));
  assert.is((await cli(['deploy', dir], env)).code, 0);
  await says('v0');
  const changes: [string, () => void][] = [1, 2, 3].map((n) => [
    `v${n}`,
    () => {
      // As editors save: the whole file to a temporary name, renamed over the original (a new inode each time).
      writeFileSync(join(dir, '.index.ts.tmp'), source(`v${n}`));
      renameSync(join(dir, '.index.ts.tmp'), file);
    },
  ]);
  changes.push(['v4', () => (rmSync(file), writeFileSync(file, source('v4')))]);
  for (const [word, change] of changes) {
    const before = redeploys();
    change();
    await eventually(() => redeploys() > before, 20_000, `a redeploy after the change to ${word}`, 50);
    await says(word);
  }
});

watch('follows the output of a function with logs --follow, tagged with invocation ids', async () => {
  assert.is((await cli(['deploy', 'test/fixtures/noisy'], env)).code, 0);
  const follower = start(['logs', 'noisy', '--follow'], env);
  try {
    for (let i = 0; i < 2; i++) assert.is((await cli(['call', 'noisy', 'Noisy.Talk'], env)).code, 0);
    await eventually(
      () => (follower.stdout().match(/chatter on stdout/g) ?? []).length === 2,
      10000,
      'two lines followed',
    );
    const ids = [...follower.stdout().matchAll(/noisy (\S+) stdout: chatter on stdout/g)].map((m) => m[1]);
    assert.is(new Set(ids).size, 2, 'each line carries its own invocation id');
  } finally {
    follower.child.kill('SIGTERM');
    await follower.exited(5000).catch(() => follower.kill());
  }
});

watch.run();
