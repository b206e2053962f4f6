/**
 * examples/config under the real `deno serve`: its config.json is read with the permission micro-fn documents
 * (`--allow-env=MICRO_*`), and an environment variable joins the configuration once Deno allows it; a variable not
 * allowed is no configuration (not a NotCapable error for a key the function only defaults).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildFor, example, post, serveBuilt, tempDir, type DenoProcess } from './deno.js';

const test = suite<{ dir: string; remove(): void; deno?: DenoProcess }>('ctx.config under deno serve', {
  dir: '',
  remove: () => {},
});
test.before.each((ctx) => void Object.assign(ctx, tempDir()));
test.after.each(async (ctx) => {
  await ctx.deno?.stop();
  ctx.deno = undefined;
  ctx.remove();
});

const hello = async (url: string) => {
  const res = await post(url, '/config/Settings.Hello', '{"name":"Ada"}');
  const body = (await res.json()) as { message?: string };
  assert.is(res.status, 200, JSON.stringify(body));
  return body.message;
};

test('reads config.json with --allow-env=MICRO_* only; a variable not allowed is left out', async (ctx) => {
  const built = await buildFor(example('config'), ctx.dir);
  ctx.deno = await serveBuilt(built.file, { shout: 'true' });
  assert.is(await hello(ctx.deno.url), 'Hello Ada');
});

test('an environment variable Deno allows is read under config.json', async (ctx) => {
  const built = await buildFor(example('config'), ctx.dir);
  ctx.deno = await serveBuilt(built.file, { shout: 'true', greeting: 'Hey' }, ['--allow-env=MICRO_*,shout,greeting']);
  assert.is(await hello(ctx.deno.url), 'HELLO ADA', "config.json's greeting over the environment's, its shout");
});

test.run();
