/**
 * A function whose own files never touch ctx.store, ctx.sync or ctx.config, but which hands `ctx` to a package that
 * does: its bundle must carry that code (adapters/kit/unused.ts looks in the packages too), or the package fails with
 * "built without", which no rebuild fixes. Built for Lambda (where unused code is left out) and its handler called.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLambda } from '../../../adapters/lambda/build.js';

const test = suite('a package handed ctx');
let dir: string;

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-package-uses-'));
  const pkg = join(dir, 'node_modules', 'tally');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'tally', type: 'module', main: 'index.js' }));
  writeFileSync(
    join(pkg, 'index.js'),
    `export async function tally(ctx) {
  const lease = await ctx.sync.lock('tally', { ttl: 5000 });
  try {
    const n = ((await ctx.store.get('n'))?.value ?? 0) + 1;
    await ctx.store.set('n', n);
    return { n, greeting: await ctx.config.string('greeting', 'none'), fenced: lease.token > 0 };
  } finally {
    await lease.release();
  }
}
`,
  );
  // The function's own file names none of them (only \`ctx\`).
  writeFileSync(
    join(dir, 'index.ts'),
    `import { defineFunction } from 'micro-fn';
import { tally } from 'tally';
export default defineFunction({ name: 'tallied', handlers: { Tally: { Count: (_req: unknown, ctx: any) => tally(ctx) } } });
`,
  );
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ greeting: 'hi' }));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('its bundle carries the store, locks and config the package uses, and the call succeeds', async () => {
  const env = { MICRO_STORE: 'memory', MICRO_SYNC: 'memory', MICRO_CONFIG: 'memory' };
  const built = await buildLambda(join(dir, 'index.ts'), { outdir: join(dir, 'out'), env });
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const mod = (await import(built.file)) as { handler: (event: unknown, context: unknown) => Promise<unknown> };
    const reply = await mod.handler(
      { endpoint: 'Tally.Count', body: {} },
      { awsRequestId: 'r1', getRemainingTimeInMillis: () => 5000 },
    );
    assert.equal((reply as { body: unknown }).body, { n: 1, greeting: 'hi', fenced: true });
  } finally {
    for (const key of Object.keys(env)) if (!(key in saved)) delete process.env[key];
  }
});

test.run();
