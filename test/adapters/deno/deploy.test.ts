/**
 * `micro-fn build --target deno` and `micro-fn deploy --target deno` as a user runs them (the built CLI), and the
 * folder a deploy writes run by Deno's own tooling: `deno task start`. Needs `npm run build` first.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, tempHome } from '../../cli/helpers.js';
import { post, runDeno, startDeno, tempDir, type DenoProcess } from './deno.js';

interface Context {
  home: string;
  dir: string;
  deno?: DenoProcess;
  cleanup: (() => void)[];
}

const fresh = (): Context => ({ home: '', dir: '', cleanup: [] });

/** Runs `micro-fn ...args` with the suite's MICRO_FN_HOME; 60 s at most (a deploy builds twice). */
const run = (ctx: Context, args: string[]) => cli(args, { MICRO_FN_HOME: ctx.home }, { timeout: 60_000 });

function setUp(ctx: Context): void {
  const home = tempHome();
  const out = tempDir();
  Object.assign(ctx, { home: home.home, dir: out.dir, cleanup: [home.cleanup, out.remove] });
}

async function tearDown(ctx: Context): Promise<void> {
  await ctx.deno?.stop();
  for (const cleanup of ctx.cleanup) cleanup();
}

// ---
const build = suite<Context>('micro-fn build --target deno', fresh());
build.before(setUp);
build.after(tearDown);

build('bundles examples/helloworld as one module for Deno', async (ctx) => {
  const r = await run(ctx, ['build', 'examples/helloworld', '--target', 'deno', '--outdir', ctx.dir, '--json']);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { target: string; file: string; artifacts: unknown[] };
  assert.is(out.target, 'deno');
  assert.is(out.file, join(ctx.dir, 'index.mjs'));
  assert.ok(existsSync(out.file));
});

build('refuses a function that imports a Node built-in, in one line naming the import chain', async (ctx) => {
  const r = await run(ctx, ['build', 'test/fixtures/cloudflare-node', '--target', 'deno', '--outdir', ctx.dir]);
  assert.is(r.code, 1);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  const chain = 'test/fixtures/cloudflare-node/index.ts → test/fixtures/cloudflare-node/read.ts → node:fs';
  assert.match(r.stderr, `build failed: ${chain}: node:fs is a Node built-in, and a Deno bundle takes Web APIs only`);
});

build.run();

// ---
const deploy = suite<Context>('micro-fn deploy --target deno', fresh());
deploy.before(setUp);
deploy.after(tearDown);

const LISTEN = '--host 127.0.0.1 --port 0';
const FLAGS = ['--target', 'deno', ...LISTEN.split(' ')];
const ENTRY = 'test/fixtures/deno-env';

deploy('refuses to deploy without --dry-run or --url, in one line that says how, and writes nothing', async (ctx) => {
  const r = await run(ctx, ['deploy', ENTRY, '--target', 'deno', '--outdir', ctx.dir]);
  assert.is(r.code, 1);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /uploads nothing: write the folder with --dry-run, serve it with `deno task start`/);
  assert.match(r.stderr, /then deploy with --url URL to register where it runs$/m);
  assert.not.ok(existsSync(join(ctx.dir, 'index.mjs')));
});

deploy('--dry-run writes the module, a deno.json and a private .env, and registers nothing', async (ctx) => {
  const r = await run(ctx, ['deploy', ENTRY, ...FLAGS, '--dry-run', '--outdir', ctx.dir, '--env', 'GREETING=hi']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, `wrote denoenv for Deno to ${ctx.dir}`);
  assert.ok(existsSync(join(ctx.dir, 'index.mjs')));
  assert.equal(JSON.parse(readFileSync(join(ctx.dir, 'deno.json'), 'utf8')), {
    tasks: {
      start: {
        description: 'Serve denoenv (written by micro-fn deploy --target deno)',
        command: `deno serve --no-prompt '--allow-env=MICRO_*,GREETING' --env-file=.env ${LISTEN} index.mjs`,
      },
    },
  });
  assert.match(readFileSync(join(ctx.dir, '.env'), 'utf8'), /^GREETING='hi'$/m);
  assert.is(statSync(join(ctx.dir, '.env')).mode & 0o777, 0o600);
  assert.is((await run(ctx, ['describe', 'denoenv', '--json'])).code, 1, 'not registered');
});

deploy("Deno's own tooling reads the deno.json: `deno task` lists the start task", async (ctx) => {
  const listed = await runDeno(['task', '--config', join(ctx.dir, 'deno.json')]);
  assert.is(listed.code, 0, listed.output);
  assert.match(listed.output, /- start\s/);
  assert.match(listed.output, 'Serve denoenv');
});

deploy('`deno task start` in the folder serves it with its .env, and nothing else of the environment', async (ctx) => {
  ctx.deno = await startDeno(['task', 'start'], { cwd: ctx.dir });
  const read = (name: string) => post(ctx.deno!.url, '/denoenv/Env.Read', JSON.stringify({ name }));
  assert.equal(await (await read('GREETING')).json(), { name: 'GREETING', value: 'hi' });
  const home = await read('HOME'); // set for the deno process, but not allowed to the function
  assert.is(home.status, 500);
  await home.arrayBuffer();
});

deploy('--url registers where Deno serves it: micro-fn call reaches the function through the registry', async (ctx) => {
  const url = ctx.deno!.url;
  const r = await run(ctx, ['deploy', ENTRY, ...FLAGS, '--url', url, '--outdir', ctx.dir, '--env', 'GREETING=hi']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, `deployed denoenv for Deno at ${url}`);
  const described = await run(ctx, ['describe', 'denoenv', '--json']);
  const [record] = JSON.parse(described.stdout) as { nodes: unknown[] }[];
  assert.equal(record!.nodes, [{ id: 'denoenv-deno', address: url, metadata: { target: 'deno' } }]);
  const called = await run(ctx, ['call', 'denoenv', 'Env.Read', '{"name":"GREETING"}']);
  assert.is(called.code, 0, called.stderr);
  assert.equal(JSON.parse(called.stdout), { name: 'GREETING', value: 'hi' });
});

deploy(
  'remove --target deno deregisters it, says what to stop, and a second remove says it is not there',
  async (ctx) => {
    const r = await run(ctx, ['remove', 'denoenv', '--target', 'deno']);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, `deregistered denoenv (${ctx.deno!.url})`);
    assert.match(r.stderr, 'removed denoenv from the registry; stop `deno task start` where it runs');
    assert.is((await run(ctx, ['describe', 'denoenv'])).code, 1, 'deregistered');
    const again = await run(ctx, ['remove', 'denoenv', '--target', 'deno']);
    assert.equal([again.code, again.stderr.trim()], [1, 'micro-fn: no Deno function denoenv is registered']);
  },
);

deploy('refuses a --url that is not http:// or https://', async (ctx) => {
  const r = await run(ctx, ['deploy', ENTRY, '--target', 'deno', '--url', 'deno.dev/hello']);
  assert.is(r.code, 1);
  assert.match(r.stderr, '--url takes the http:// or https:// address where Deno serves it; got "deno.dev/hello"');
});

deploy('a deploy without --env removes the .env of the last one', async (ctx) => {
  const r = await run(ctx, ['deploy', ENTRY, ...FLAGS, '--dry-run', '--outdir', ctx.dir]);
  assert.is(r.code, 0, r.stderr);
  assert.not.ok(existsSync(join(ctx.dir, '.env')));
  assert.not.match(readFileSync(join(ctx.dir, 'deno.json'), 'utf8'), '--env-file');
});

deploy('says that the topics of a function with subscribers do not run on Deno', async (ctx) => {
  const r = await run(ctx, ['deploy', 'examples/events', '--target', 'deno', '--dry-run', '--outdir', ctx.dir]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, 'Deno has no queue to trigger it: topics user.created do not run there');
});

deploy.run();
