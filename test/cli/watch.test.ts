import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
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
