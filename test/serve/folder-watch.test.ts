import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FolderWatcher } from '../../serve/folder-watch.js';
import { eventually } from '../helpers.js';

interface Context {
  root: string;
  seen: string[];
  errors: Error[];
  watcher?: FolderWatcher;
}

// ---
const folders = suite<Context>('FolderWatcher', { root: '', seen: [], errors: [] });

folders.before.each((ctx) => {
  ctx.root = mkdtempSync(join(tmpdir(), 'micro-fn-watch-'));
  ctx.seen = [];
  ctx.errors = [];
});

folders.after.each((ctx) => {
  ctx.watcher?.close();
  rmSync(ctx.root, { recursive: true, force: true });
});

const start = (ctx: Context) =>
  (ctx.watcher = new FolderWatcher(
    ctx.root,
    (path) => ctx.seen.push(path),
    (err) => ctx.errors.push(err),
  ));

/** Makes `change`, then waits until `path` has been reported since. */
async function sees(ctx: Context, path: string, change: () => void): Promise<void> {
  ctx.seen.length = 0;
  change();
  await eventually(() => ctx.seen.includes(path), 5000, `a change of ${path}`);
}

folders('sees a file through 3 atomic saves with the same temporary name: 3 of 3', async (ctx) => {
  const file = join(ctx.root, 'index.ts');
  writeFileSync(file, 'v0');
  start(ctx);
  for (let i = 1; i <= 3; i++)
    await sees(ctx, file, () => {
      writeFileSync(join(ctx.root, '.index.ts.tmp'), `v${i}`);
      renameSync(join(ctx.root, '.index.ts.tmp'), file);
    });
  await sees(ctx, file, () => writeFileSync(file, 'in place'));
  assert.equal(ctx.errors, []);
});

folders('sees a file deleted and made again, and a folder made later, its files and its removal', async (ctx) => {
  const file = join(ctx.root, 'index.ts');
  writeFileSync(file, 'v0');
  start(ctx);
  await sees(ctx, file, () => rmSync(file));
  await sees(ctx, file, () => writeFileSync(file, 'again'));
  const lib = join(ctx.root, 'lib');
  await sees(ctx, lib, () => mkdirSync(lib));
  await sees(ctx, join(lib, 'util.ts'), () => writeFileSync(join(lib, 'util.ts'), 'x'));
  assert.is(ctx.watcher!.size, 2, 'the root and lib');
  await sees(ctx, lib, () => rmSync(lib, { recursive: true }));
  await eventually(() => ctx.watcher!.size === 1, 5000, 'lib let go');
  assert.equal(ctx.errors, []);
});

folders('watches folders that exist at the start, but never node_modules or .git', async (ctx) => {
  mkdirSync(join(ctx.root, 'src', 'deep'), { recursive: true });
  mkdirSync(join(ctx.root, 'node_modules', 'dep'), { recursive: true });
  mkdirSync(join(ctx.root, '.git'));
  start(ctx);
  assert.is(ctx.watcher!.size, 3, 'root, src, src/deep');
  await sees(ctx, join(ctx.root, 'src', 'deep', 'a.ts'), () =>
    writeFileSync(join(ctx.root, 'src', 'deep', 'a.ts'), ''),
  );
  ctx.seen.length = 0;
  writeFileSync(join(ctx.root, 'node_modules', 'dep', 'index.js'), '');
  writeFileSync(join(ctx.root, '.git', 'HEAD'), '');
  await sees(ctx, join(ctx.root, 'marker'), () => writeFileSync(join(ctx.root, 'marker'), ''));
  assert.equal(
    ctx.seen.filter((p) => /node_modules|\.git/.test(p)),
    [],
  );
});

folders.run();
