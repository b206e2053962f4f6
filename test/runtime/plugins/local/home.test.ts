// MICRO_FN_HOME as serve makes it and leaves it: 0700, and what an earlier version left open tightened.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureHome } from '../../../../runtime/plugins/local/home.js';

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
let base: string;

// ---
const ensure = suite('ensureHome');

ensure.before(() => {
  base = mkdtempSync(join(tmpdir(), 'micro-fn-home-'));
});
ensure.after(() => rmSync(base, { recursive: true, force: true }));

ensure('makes a missing MICRO_FN_HOME, parents included, with mode 0700', async () => {
  const home = join(base, 'a', 'home');
  await ensureHome(home);
  assert.is(mode(home), '700');
});

ensure('tightens an existing home and its folders to 0700, and leaves the registry and files as they are', async () => {
  const home = join(base, 'open');
  for (const dir of ['', 'logs', 'functions', 'cache', 'registry'])
    mkdirSync(join(home, dir), { recursive: true, mode: 0o755 });
  writeFileSync(join(home, 'note'), '', { mode: 0o644 });
  await ensureHome(home);
  assert.equal(
    ['', 'logs', 'functions', 'cache', 'registry', 'note'].map((p) => `${p || '.'} ${mode(join(home, p))}`),
    ['. 700', 'logs 700', 'functions 700', 'cache 700', 'registry 755', 'note 644'],
  );
});

ensure.run();
