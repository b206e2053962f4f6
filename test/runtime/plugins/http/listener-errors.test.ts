import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect } from 'node:net';
import { Metadata, errors, type RequestHandler } from '../../../../runtime/core/index.js';
import { DEFAULT_MAX_BODY_SIZE } from '../../../../runtime/plugins/http/listener.js';
import { serverResponse } from '../../../contracts/transport.js';
import { withTimeout } from '../../../helpers.js';
import { closeAll, json, listen, mucp, raw, recorder, send, type Reply } from './wire.js';

// ---
const failures = suite('HttpListener: errors');
failures.after.each(closeAll);

function assertError(res: Reply, code: number): void {
  assert.is(res.status, code);
  const body = json(res) as { code: number; status: string };
  assert.is(body.code, code);
  assert.equal(JSON.parse(String(res.headers['micro-error'])), body, 'Micro-Error carries the same JSON');
  assert.is(res.headers['content-type'], 'application/json');
}

failures(
  'answers 413 from Content-Length before any of the body arrives, and cuts a connection whose body never comes',
  async () => {
    const { seen, handler } = recorder();
    const listener = await listen(handler);
    const text = await raw(
      listener.address,
      `POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: A.B\r\nContent-Length: ${DEFAULT_MAX_BODY_SIZE + 1}\r\n\r\n{`,
    );
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.match(text, /\r\nmicro-error: \{"id":"micro-fn","code":413,/i);
    assert.match(text, /"status":"Payload Too Large"\}$/);
    assert.is(seen.length, 0);
  },
);

failures('answers 413 to a chunked body once it passes maxBodySize, and closes the connection', async () => {
  const { seen, handler } = recorder();
  const listener = await listen(handler, { maxBodySize: 1000 });
  const res = await send(listener.address, {
    headers: mucp('A.B', { 'Transfer-Encoding': 'chunked' }),
    chunks: [new Uint8Array(600), new Uint8Array(600)],
  });
  assertError(res, 413);
  assert.is(res.headers.connection, 'close');
  assert.is(seen.length, 0);
});

failures('answers 413 to a 2 MiB chunked upload from fetch with the default limit', async () => {
  const listener = await listen(recorder().handler);
  const chunk = new Uint8Array(64 * 1024);
  let n = 0;
  const body = new ReadableStream<Uint8Array>({ pull: (c) => (n++ < 32 ? c.enqueue(chunk) : c.close()) });
  const init = { method: 'POST', headers: mucp('A.B'), body, duplex: 'half' } as RequestInit;
  const res = await withTimeout(fetch(listener.address, init), 5000, 'fetch');
  assert.is(res.status, 413);
  assert.ok(res.headers.get('micro-error'));
  assert.is(((await res.json()) as { code: number }).code, 413);
});

failures(
  'drains a body declared too large, so a client that sends it whole reads its 413 (20 of 20, none reset)',
  async () => {
    const listener = await listen(recorder().handler);
    const body = 'x'.repeat(2 * DEFAULT_MAX_BODY_SIZE);
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await withTimeout(fetch(`${listener.address}/a/B.C`, { method: 'POST', body }), 5000, 'fetch');
      statuses.push(res.status);
      await res.text();
    }
    assert.equal(statuses, Array(20).fill(413));
  },
);

failures('answers 405 with Allow: POST to other methods', async () => {
  const listener = await listen(recorder().handler);
  for (const [method, path] of [
    ['GET', '/'],
    ['PUT', '/greeter/Greeter.Hello'],
    ['DELETE', '/'],
  ] as const) {
    const res = await send(listener.address, { method, path, headers: mucp('A.B') });
    assertError(res, 405);
    assert.is(res.headers.allow, 'POST');
  }
});

failures('answers 400 to a request that names no endpoint, 404 to an unknown path', async () => {
  const listener = await listen(recorder().handler);
  assertError(await send(listener.address, { headers: { 'Micro-Service': 'greeter' }, body: '{}' }), 400);
  assertError(await send(listener.address, { path: '/a/b/c', body: '{}' }), 404);
  assertError(await send(listener.address, { path: '/svc/%E0%A4%A', body: '{}' }), 400);
});

failures('sends Micro-Error with error replies, non-ASCII escaped so the header stays valid', async () => {
  const error = errors.badRequest('greeter', 'nom «requis» — 名前');
  const listener = await listen(async (_r, reply) =>
    reply({
      status: 400,
      contentType: 'application/json',
      body: new TextEncoder().encode(JSON.stringify(error)),
      metadata: new Metadata(),
      error,
    }),
  );
  const res = await send(listener.address, { headers: mucp('A.B'), body: '{}' });
  assertError(res, 400);
  assert.is((JSON.parse(String(res.headers['micro-error'])) as { detail: string }).detail, 'nom «requis» — 名前');
});

failures(
  'answers 500 error JSON when the handler throws, returns without a reply, or replies with a bad header',
  async () => {
    const handlers: RequestHandler[] = [
      async () => {
        throw new Error('bug');
      },
      (() => {
        throw new Error('sync bug');
      }) as RequestHandler,
      async () => {},
      async (_r, reply) => reply(serverResponse('{}', { 'x-bad': 'line\nbreak' })),
    ];
    for (const handler of handlers)
      assertError(await send((await listen(handler)).address, { headers: mucp('A.B'), body: '{}' }), 500);
  },
);

failures('survives garbage and malformed HTTP, answering 400 error JSON, and keeps serving', async () => {
  const listener = await listen(recorder().handler);
  for (const text of [
    'GARBAGE\r\n\r\n',
    'POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n',
    'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    '\x00\x01\x02\xff\r\n\r\n',
  ]) {
    const answer = await raw(listener.address, text);
    assert.match(answer, /^HTTP\/1\.1 400 /, JSON.stringify(text));
    assert.match(answer, /micro-error: \{"id":"micro-fn","code":400/i);
  }
  // A connection dropped in the middle of a body.
  const { hostname, port } = new URL(listener.address);
  const socket = connect(Number(port), hostname, () =>
    socket.end('POST / HTTP/1.1\r\nMicro-Endpoint: A.B\r\nContent-Length: 100\r\n\r\n{"a":'),
  );
  socket.resume(); // read, so that the server's FIN is seen
  await withTimeout(new Promise((r) => socket.on('close', r)), 3000, 'the half-sent request to end');
  assert.is((await send(listener.address, { headers: mucp('A.B'), body: '{}' })).status, 200);
});

failures.run();
