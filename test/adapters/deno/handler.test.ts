/** The Deno handler (createServe) under the real `deno serve`: built examples and fixtures, called over HTTP. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, withTimeout } from '../../helpers.js';
import { buildFor, example, fixture, post, serveBuilt, tempDir, type DenoProcess } from './deno.js';

interface Context {
  deno?: DenoProcess;
  remove: () => void;
}

/** Builds `entry` and serves it with `deno serve`, its configuration `env` and Deno `permissions`. */
async function start(ctx: Context, entry: string, env: Record<string, string> = {}, permissions?: string[]) {
  const { dir, remove } = tempDir();
  ctx.remove = remove;
  const built = await buildFor(entry, dir);
  ctx.deno = await serveBuilt(built.file, env, permissions);
}

async function stop(ctx: Context): Promise<void> {
  await ctx.deno?.stop();
  ctx.remove();
}

const url = (ctx: Context) => ctx.deno!.url;
const errorOf = async (res: Response) => {
  const header = res.headers.get('micro-error');
  return { body: (await res.json()) as { code: number }, header };
};

// ---
const hello = suite<Context>('createServe: helloworld under deno serve', { remove: () => {} });
hello.before(async (ctx) => start(ctx, example('helloworld')));
hello.after(stop);

hello('answers POST /helloworld/Greeter.Hello with the handler reply', async (ctx) => {
  const res = await post(url(ctx), '/helloworld/Greeter.Hello', '{"name":"Ada"}');
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'application/json');
  assert.ok(res.headers.get('micro-id'), 'Micro-Id is set');
  assert.equal(await res.json(), { message: 'Hello Ada' });
});

hello('answers POST / named by Micro-Service and Micro-Endpoint, echoing Micro-Id', async (ctx) => {
  const headers = { 'micro-service': 'helloworld', 'micro-endpoint': 'Greeter.Hello', 'micro-id': 'deno-1' };
  const res = await post(url(ctx), '/', '{"name":"Bo"}', headers);
  assert.is(res.status, 200);
  assert.is(res.headers.get('micro-id'), 'deno-1');
  assert.equal(await res.json(), { message: 'Hello Bo' });
});

hello('serves one request after another, each in a fresh function', async (ctx) => {
  const names = ['A', 'B', 'C', 'D'];
  const call = (name: string) => post(url(ctx), '/helloworld/Greeter.Hello', JSON.stringify({ name }));
  const replies = await Promise.all(names.map(call));
  assert.equal(
    await Promise.all(replies.map((r) => r.json())),
    names.map((name) => ({ message: `Hello ${name}` })),
  );
});

hello("answers a handler's error with 400 as error JSON, in the body and in Micro-Error", async (ctx) => {
  const res = await post(url(ctx), '/helloworld/Greeter.Hello', '{}');
  const expected = { id: 'helloworld', code: 400, detail: 'name is required', status: 'Bad Request' };
  assert.is(res.status, 400);
  const { body, header } = await errorOf(res);
  assert.equal(body, expected);
  assert.equal(JSON.parse(header!), expected);
});

hello('answers malformed JSON with 400', async (ctx) => {
  const res = await post(url(ctx), '/helloworld/Greeter.Hello', '{"name":');
  assert.is(res.status, 400);
  assert.is((await errorOf(res)).body.code, 400);
});

hello('answers an unknown endpoint, service or path with 404 and Micro-Error', async (ctx) => {
  for (const path of ['/helloworld/Greeter.Missing', '/other/Greeter.Hello', '/a/b/c']) {
    const res = await post(url(ctx), path, '{}');
    assert.is(res.status, 404, path);
    const { body, header } = await errorOf(res);
    assert.is(body.code, 404, path);
    assert.is(JSON.parse(header!).code, 404, path);
  }
});

hello('answers a method other than POST with 405 and Allow: POST', async (ctx) => {
  const put = fetch(`${url(ctx)}/helloworld/Greeter.Hello`, { method: 'PUT', body: '{}' });
  const res = await withTimeout(put, 15_000, 'PUT');
  assert.is(res.status, 405);
  assert.is(res.headers.get('allow'), 'POST');
  assert.is((await errorOf(res)).body.code, 405);
});

hello('answers a body over 1 MiB with 413, by Content-Length or while streaming it', async (ctx) => {
  const declared = await post(url(ctx), '/helloworld/Greeter.Hello', new Uint8Array(1_048_577).fill(0x20));
  assert.is(declared.status, 413);
  assert.is((await errorOf(declared)).body.code, 413);
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if ((sent += chunk.length) > 2 * 1_048_576) controller.close();
      else controller.enqueue(chunk);
    },
  });
  const streamed = await post(url(ctx), '/helloworld/Greeter.Hello', stream);
  assert.is(streamed.status, 413);
  assert.is(JSON.parse(streamed.headers.get('micro-error')!).code, 413);
  await streamed.arrayBuffer();
});

hello('answers GET /health as a probe, and the next request is served', async (ctx) => {
  const res = await withTimeout(fetch(`${url(ctx)}/health`), 15_000, 'GET /health');
  assert.is(res.status, 200);
  assert.equal(await res.json(), { status: 'ok' });
  const next = await post(url(ctx), '/helloworld/Greeter.Hello', '{"name":"Cy"}');
  assert.equal(await next.json(), { message: 'Hello Cy' });
});

hello.run();

// ---
const events = suite<Context>('createServe: events (subscribers only) under deno serve', { remove: () => {} });
events.before(async (ctx) => start(ctx, example('events')));
events.after(stop);

events('answers GET /health: a function with only subscribers starts and serves probes', async (ctx) => {
  const res = await withTimeout(fetch(`${url(ctx)}/health`), 15_000, 'GET /health');
  assert.is(res.status, 200);
  assert.equal(await res.json(), { status: 'ok' });
});

events('answers an RPC to its topic with 404: on Deno nothing delivers messages over HTTP', async (ctx) => {
  const res = await post(url(ctx), '/events/user.created', '{"id":1}');
  assert.is(res.status, 404);
  const { body, header } = await errorOf(res);
  assert.is(body.code, 404);
  assert.is(JSON.parse(header!).code, 404);
  assert.not.match(ctx.deno!.output(), 'user 1 created', 'the subscriber did not run');
});

events.run();

// ---
const env = suite<Context>('createServe: Deno.env as ctx.env, least privilege', { remove: () => {} });
const ENV = { MICRO_LOG_LEVEL: 'warn', GREETING: 'hi', SECRET: 's3' };
env.before(async (ctx) => start(ctx, fixture('deno-env'), ENV, ['--allow-env=MICRO_*,GREETING']));
env.after(stop);

const read = (ctx: Context, name: string) => post(url(ctx), '/denoenv/Env.Read', JSON.stringify({ name }));

env('gives a handler the variables Deno lets it read: MICRO_* and the names allowed', async (ctx) => {
  assert.equal(await (await read(ctx, 'GREETING')).json(), { name: 'GREETING', value: 'hi' });
  assert.equal(await (await read(ctx, 'MICRO_LOG_LEVEL')).json(), { name: 'MICRO_LOG_LEVEL', value: 'warn' });
  assert.equal(await (await read(ctx, 'MICRO_UNSET')).json(), { name: 'MICRO_UNSET', value: null });
});

env('answers 500 when a handler reads a variable Deno does not allow, and keeps serving', async (ctx) => {
  const denied = await read(ctx, 'SECRET');
  assert.is(denied.status, 500);
  assert.is((await errorOf(denied)).body.code, 500);
  assert.not.match(await (await read(ctx, 'GREETING')).text(), 's3');
  const reason = /Requires env access to \\?"SECRET/;
  await eventually(() => reason.test(ctx.deno!.output()), 5000, "Deno's reason in the function's log");
});

env.run();
