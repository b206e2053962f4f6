/** The Workers handler (createWorker) in real workerd: the built fixture, invoked as the platform does. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Miniflare } from 'miniflare';
import type { CloudflareBuild } from '../../../adapters/cloudflare/build.js';
import { withTimeout } from '../../helpers.js';
import { body as asBody, buildWorker, fixture, sendBatch, startWorker, tempDir } from './worker.js';

interface Context {
  mf: Miniflare;
  built: CloudflareBuild;
  dir: string;
  remove: () => void;
}

const ctx0 = { mf: undefined as never, built: undefined as never, dir: '', remove: () => {} };
const BASE = 'http://worker.test';

async function start(ctx: Context): Promise<void> {
  Object.assign(ctx, tempDir());
  ctx.built = await buildWorker(fixture('cloudflare'), ctx.dir); // as a deploy without NATS builds it
  ctx.mf = startWorker(ctx.built, ctx.dir, { GREETING: 'hi', SERVICE_BINDING: { kind: 'object' } });
  await withTimeout(ctx.mf.ready, 30_000, 'workerd start');
}

async function stop(ctx: Context): Promise<void> {
  await ctx.mf?.dispose();
  ctx.remove();
}

const post = (
  ctx: Context,
  path: string,
  body: string | Uint8Array | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
) =>
  withTimeout(
    ctx.mf.dispatchFetch(`${BASE}${path}`, {
      method: 'POST',
      body: asBody(body),
      headers: { 'content-type': 'application/json', ...headers },
      duplex: 'half',
    }),
    10_000,
    `POST ${path}`,
  );

// ---
const fetchSuite = suite<Context>('createWorker: fetch', { ...ctx0 });
fetchSuite.before(start);
fetchSuite.after(stop);

fetchSuite('answers POST /<service>/<Service.Method> with the handler reply', async (ctx) => {
  const res = await post(ctx, '/cfdemo/Greeter.Hello', '{"name":"Ada"}');
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'application/json');
  assert.ok(res.headers.get('micro-id'), 'Micro-Id is echoed');
  assert.equal(await res.json(), { message: 'Hello Ada' });
});

fetchSuite('answers POST / named by Micro-Service and Micro-Endpoint, metadata travelling both ways', async (ctx) => {
  const res = await post(ctx, '/', '{"name":"Bo"}', {
    'micro-service': 'cfdemo',
    'micro-endpoint': 'Greeter.Hello',
    'micro-id': 'req-1',
    'x-question': 'ready',
  });
  assert.is(res.status, 200);
  assert.is(res.headers.get('micro-id'), 'req-1');
  assert.is(res.headers.get('x-answer'), 'ready: yes');
  assert.equal(await res.json(), { message: 'Hello Bo' });
});

fetchSuite("gives the handler the Worker's bindings as ctx.env", async (ctx) => {
  const res = await post(ctx, '/cfdemo/Greeter.Config', '{}');
  assert.equal(await res.json(), { greeting: 'hi', service: 'object' });
});

fetchSuite("answers a handler's error as error JSON with its status and Micro-Error", async (ctx) => {
  const res = await post(ctx, '/cfdemo/Greeter.Hello', '{}');
  const expected = { id: 'cfdemo', code: 400, detail: 'name is required', status: 'Bad Request' };
  assert.is(res.status, 400);
  assert.equal(await res.json(), expected);
  assert.equal(JSON.parse(res.headers.get('micro-error')!), expected);
});

fetchSuite('answers malformed JSON with 400', async (ctx) => {
  const res = await post(ctx, '/cfdemo/Greeter.Hello', '{"name":');
  assert.is(res.status, 400);
  assert.is(((await res.json()) as { code: number }).code, 400);
});

fetchSuite('answers an unknown endpoint, service or path with 404', async (ctx) => {
  for (const path of ['/cfdemo/Greeter.Missing', '/other/Greeter.Hello', '/a/b/c']) {
    const res = await post(ctx, path, '{}');
    assert.is(res.status, 404, path);
    assert.is(JSON.parse(res.headers.get('micro-error')!).code, 404, path);
    await res.arrayBuffer();
  }
});

fetchSuite('answers a method other than POST with 405 and Allow: POST', async (ctx) => {
  const res = await withTimeout(
    ctx.mf.dispatchFetch(`${BASE}/cfdemo/Greeter.Hello`, { method: 'PUT', body: '{}' }),
    10_000,
    'PUT',
  );
  assert.is(res.status, 405);
  assert.is(res.headers.get('allow'), 'POST');
  assert.is(((await res.json()) as { code: number }).code, 405);
});

fetchSuite('answers a body over 1 MiB with 413, by Content-Length or while streaming it', async (ctx) => {
  const big = new Uint8Array(1_048_577).fill(0x20);
  const declared = await post(ctx, '/cfdemo/Greeter.Hello', big);
  assert.is(declared.status, 413);
  assert.is(((await declared.json()) as { code: number }).code, 413);
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if ((sent += chunk.length) > 2 * 1_048_576) controller.close();
      else controller.enqueue(chunk);
    },
  });
  const streamed = await post(ctx, '/cfdemo/Greeter.Hello', stream);
  assert.is(streamed.status, 413);
  assert.is(JSON.parse(streamed.headers.get('micro-error')!).code, 413);
  await streamed.arrayBuffer();
});

fetchSuite("answers 408 at the caller's Micro-Timeout when the handler never answers", async (ctx) => {
  const res = await post(ctx, '/cfdemo/Greeter.Stuck', '{}', { 'micro-timeout': '300' });
  assert.is(res.status, 408);
  assert.is(((await res.json()) as { code: number }).code, 408);
  assert.is(JSON.parse(res.headers.get('micro-error')!).code, 408);
});

fetchSuite(
  "answers 408 at the Worker's MICRO_FN_TIMEOUT (deploy --timeout) without a caller's deadline",
  async (ctx) => {
    const mf = startWorker(ctx.built, ctx.dir, { MICRO_FN_TIMEOUT: '300' });
    try {
      await withTimeout(mf.ready, 30_000, 'workerd start');
      const res = await withTimeout(
        mf.dispatchFetch(`${BASE}/cfdemo/Greeter.Stuck`, {
          method: 'POST',
          body: '{}',
          headers: { 'content-type': 'application/json' },
        }),
        10_000,
        'the 408',
      );
      assert.is(res.status, 408);
      assert.is(((await res.json()) as { code: number }).code, 408);
    } finally {
      await mf.dispose();
    }
  },
);

fetchSuite('answers GET /health as a probe', async (ctx) => {
  const res = await withTimeout(ctx.mf.dispatchFetch(`${BASE}/health`), 10_000, 'GET /health');
  assert.is(res.status, 200);
  assert.equal(await res.json(), { status: 'ok' });
});

// A setting the Worker reads: it registers nowhere, so MICRO_REGISTER_TTL is neither read nor checked there.
fetchSuite('answers 500 as error JSON when the configuration is wrong (the reason goes to the log)', async (ctx) => {
  const mf = startWorker(ctx.built, ctx.dir, { MICRO_FN_TIMEOUT: 'soon' });
  try {
    const res = await withTimeout(
      mf.dispatchFetch(`${BASE}/cfdemo/Greeter.Hello`, {
        method: 'POST',
        body: '{"name":"Ada"}',
        headers: { 'content-type': 'application/json' },
      }),
      15_000,
      'the invocation',
    );
    assert.is(res.status, 500);
    assert.equal(await res.json(), {
      id: 'cfdemo',
      code: 500,
      detail: 'internal server error',
      status: 'Internal Server Error',
    });
  } finally {
    await mf.dispose();
  }
});

fetchSuite.run();

// ---
const queueSuite = suite<Context>('createWorker: queue', { ...ctx0 });
queueSuite.before(start);
queueSuite.after(stop);

const message = (id: string, body: unknown, attempts = 1) => ({ id, timestamp: new Date(), body, attempts });

queueSuite('acks each message whose run succeeded and retries each one that failed, in one batch', async (ctx) => {
  // Queue `jobs-run` feeds topic `jobs.run`; `failBefore: 3` fails attempts 1 and 2 only.
  const result = await sendBatch(ctx.mf, 'jobs-run', [
    message('ok-1', {}),
    message('bad-1', { failBefore: 3 }),
    message('ok-2', { failBefore: 3 }, 3),
    message('bad-2', { failBefore: 3 }, 2),
  ]);
  assert.is(result.outcome, 'ok');
  assert.is(result.ackAll, false);
  assert.equal(result.retryBatch.retry, false, 'the batch as a whole is not retried');
  assert.equal([...result.explicitAcks].sort(), ['ok-1', 'ok-2']);
  assert.equal(result.retryMessages.map((m) => m.msgId).sort(), ['bad-1', 'bad-2']);
});

queueSuite('takes bytes as they are and retries a message that is not JSON', async (ctx) => {
  const result = await sendBatch(ctx.mf, 'jobs-run', [
    message('bytes', new TextEncoder().encode('{"failBefore":1}')),
    message('garbled', new TextEncoder().encode('{nope')),
  ]);
  assert.equal([...result.explicitAcks], ['bytes']);
  assert.equal(
    result.retryMessages.map((m) => m.msgId),
    ['garbled'],
  );
});

queueSuite("feeds a queue named otherwise to the function's only subscriber", async (ctx) => {
  const result = await sendBatch(ctx.mf, 'nightly', [message('m1', {}), message('m2', { failBefore: 2 })]);
  assert.equal([...result.explicitAcks], ['m1']);
  assert.equal(
    result.retryMessages.map((m) => m.msgId),
    ['m2'],
  );
});

queueSuite.run();

// ---
const noSubscriber = suite<Context>('createWorker: queue, a function without subscribers', { ...ctx0 });
noSubscriber.before(async (ctx) => {
  Object.assign(ctx, tempDir());
  // helloworld: built without the message path (build-constants.ts __MICRO_FN_NO_SUBSCRIBERS__).
  ctx.built = await buildWorker(fixture('../../examples/helloworld'), ctx.dir);
  ctx.mf = startWorker(ctx.built, ctx.dir);
  await withTimeout(ctx.mf.ready, 30_000, 'workerd start');
});
noSubscriber.after(stop);

noSubscriber('retries every message of a batch (2 of 2, 0 acked) and still answers a call', async (ctx) => {
  const result = await sendBatch(ctx.mf, 'jobs-run', [message('m1', {}), message('m2', {})]);
  assert.equal([...result.explicitAcks], []);
  assert.equal(result.retryMessages.map((m) => m.msgId).sort(), ['m1', 'm2']);
  const res = await post(ctx, '/helloworld/Greeter.Hello', '{"name":"Ada"}');
  assert.equal(await res.json(), { message: 'Hello Ada' });
});

noSubscriber.run();
