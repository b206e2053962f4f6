import { createServer, type IncomingMessage, type Server, type ServerResponse as NodeResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { errors } from '../../../../runtime/core/index.js';
import { Exchange, readBody } from '../../../../runtime/plugins/http/exchange.js';
import { serverResponse } from '../../../contracts/transport.js';
import { eventually, withTimeout } from '../../../helpers.js';

/** Feeds `chunks` through a stream shaped like a request and reports what readBody called back with. */
function feed(
  chunks: Uint8Array[],
  max: number,
): Promise<{ body: Uint8Array | undefined; calls: number; paused: boolean }> {
  const stream = new PassThrough();
  let calls = 0;
  const result = new Promise<Uint8Array | undefined>((resolve) =>
    readBody(stream as unknown as IncomingMessage, max, (body) => {
      calls++;
      resolve(body);
    }),
  );
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  return withTimeout(result).then(async (body) => {
    await new Promise((r) => setImmediate(r));
    return { body, calls, paused: stream.isPaused() };
  });
}

// ---
const read = suite('readBody');

read('collects every chunk into one body', async () => {
  const { body, calls } = await feed([new Uint8Array([1, 2]), new Uint8Array([3])], 10);
  assert.equal([...body!], [1, 2, 3]);
  assert.is(calls, 1);
});

read('passes a body of one chunk on without copying it', async () => {
  const chunk = new Uint8Array([9, 9, 9]);
  const { body } = await feed([chunk], 3);
  assert.is(body!.byteLength, 3);
  assert.is(body!.buffer, chunk.buffer, 'a view of the same memory');
});

read('gives an empty body for no chunks', async () => {
  const { body } = await feed([], 10);
  assert.is(body!.byteLength, 0);
});

read('calls back once with undefined the moment the body passes max, and stops reading', async () => {
  const { body, calls, paused } = await feed([new Uint8Array(6), new Uint8Array(6), new Uint8Array(6)], 10);
  assert.is(body, undefined);
  assert.is(calls, 1);
  assert.ok(paused, 'the stream is paused');
});

read.run();

// ---
const exchange = suite<{ server?: Server }>('Exchange', {});
exchange.after.each(async (ctx) => {
  ctx.server?.closeAllConnections();
  await new Promise((r) => ctx.server?.close(r) ?? r(undefined));
  ctx.server = undefined;
});

/** A server whose one response is handled by `use`; resolves with the HTTP reply the client read. */
async function serve(ctx: { server?: Server }, use: (res: NodeResponse) => void): Promise<Response> {
  ctx.server = createServer((_req, res) => use(res));
  await new Promise<void>((r) => ctx.server!.listen(0, '127.0.0.1', r));
  return withTimeout(fetch(`http://127.0.0.1:${(ctx.server.address() as AddressInfo).port}/`, { method: 'POST' }));
}

exchange('reply() writes the response, resolves on finish and settles its owner once', async (ctx) => {
  let settled = 0;
  let replied: Promise<void> | undefined;
  const res = await serve(ctx, (nodeRes) => {
    const ex = new Exchange({ closing: false, settled: () => void settled++ }, nodeRes, 'id-1', 'svc');
    replied = ex.reply(serverResponse('{"ok":true}', { 'x-a': '1' }));
    ex.fail(errors.internal('svc')); // too late: a reply was written
  });
  await withTimeout(replied!);
  assert.equal(
    [res.status, res.headers.get('micro-id'), res.headers.get('x-a'), await res.text()],
    [200, 'id-1', '1', '{"ok":true}'],
  );
  assert.is(settled, 1);
});

exchange('fail() answers with error JSON in the body and Micro-Error, closing when asked', async (ctx) => {
  const res = await serve(ctx, (nodeRes) =>
    new Exchange({ closing: false, settled() {} }, nodeRes, 'id-2', 'svc').fail(errors.conflict('svc', 'taken'), true),
  );
  assert.is(res.status, 409);
  assert.is(res.headers.get('connection'), 'close');
  assert.equal(JSON.parse(res.headers.get('micro-error')!), await res.json());
});

exchange(
  'as the caller: gone once the connection closes before the reply, and says so once to each listener',
  async (ctx) => {
    let ex: Exchange | undefined;
    const calls: string[] = [];
    ctx.server = createServer((_req, res) => {
      ex = new Exchange({ closing: false, settled() {} }, res, 'id-3', 'svc');
      ex.onGone(() => calls.push('a'));
      const off = ex.onGone(() => calls.push('removed'));
      off();
    });
    await new Promise<void>((r) => ctx.server!.listen(0, '127.0.0.1', r));
    const giveUp = new AbortController();
    const call = fetch(`http://127.0.0.1:${(ctx.server.address() as AddressInfo).port}/`, {
      method: 'POST',
      signal: giveUp.signal,
    }).catch(() => 'gave up');
    await eventually(() => ex !== undefined, 5000, 'the request arrived');
    assert.not.ok(ex!.gone, 'the caller still waits');
    giveUp.abort();
    assert.is(await withTimeout(call), 'gave up');
    await eventually(() => ex!.gone, 5000, 'the caller seen gone');
    ex!.onGone(() => calls.push('late')); // already gone: at once
    assert.equal(calls, ['a', 'late']);
  },
);

exchange('as the caller: never gone once its reply was written, whatever the connection does next', async (ctx) => {
  let ex: Exchange | undefined;
  let fired = 0;
  const res = await serve(ctx, (nodeRes) => {
    ex = new Exchange({ closing: false, settled() {} }, nodeRes, 'id-4', 'svc');
    ex.onGone(() => fired++);
    void ex.reply(serverResponse('{}'));
  });
  await res.text();
  ctx.server?.closeAllConnections();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal([ex?.gone, fired], [false, 0]);
});

exchange.run();
