/** The HTTP listener's bounds, attacked over raw sockets: connections, header and body timeouts, keep-alive, 417, 431. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import type { RequestHandler } from '../../../../runtime/core/index.js';
import { LISTENER_LIMITS } from '../../../../runtime/plugins/http/listener.js';
import { serverResponse } from '../../../contracts/transport.js';
import { sleep, withTimeout } from '../../../helpers.js';
import { closeAll, json, listen, mucp, raw, recorder, send } from './wire.js';

const sockets: Socket[] = [];

/** A connection that stays open until the server closes it; `closed` resolves then, with what the server wrote. */
function open(address: string): Promise<{ socket: Socket; closed: Promise<string>; isClosed: () => boolean }> {
  const { hostname, port } = new URL(address);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    sockets.push(socket);
    let data = '';
    let gone = false;
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (data += c));
    const closed = new Promise<string>((r) => socket.on('close', () => ((gone = true), r(data))));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, closed, isClosed: () => gone }));
    socket.once('error', reject);
  });
}

/** The error JSON at the end of a raw HTTP answer. */
function errorOf(text: string): { code: number; detail: string; status: string } {
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: number; detail: string; status: string };
}

// ---
const limits = suite('HttpListener: limits');
limits.after.each(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await closeAll();
});

limits('defaults: 1000 connections, 10 s for headers, 30 s for a whole request, 5 s keep-alive', () => {
  assert.equal(LISTENER_LIMITS, {
    maxConnections: 1000,
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
  });
});

limits(
  'answers Expect: bogus with a 417 error JSON (Node alone answers with an empty body); the handler never runs',
  async () => {
    const { seen, handler } = recorder();
    const listener = await listen(handler);
    const text = await raw(
      listener.address,
      'POST / HTTP/1.1\r\nHost: x\r\nMicro-Service: greeter\r\nMicro-Endpoint: A.B\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\n{}',
    );
    assert.match(text, /^HTTP\/1\.1 417 /);
    const error = errorOf(text);
    assert.is(error.code, 417);
    assert.is(error.status, 'Expectation Failed');
    assert.match(error.detail, /Expect: bogus is not supported/);
    assert.match(text, /\r\nmicro-error: \{"id":"greeter","code":417,/i);
    assert.is(seen.length, 0);
  },
);

limits('cuts a client sending its headers a byte at a time once headersTimeout passes: 408 error JSON', async () => {
  const listener = await listen(recorder().handler, { headersTimeout: 1000 });
  const { socket, closed, isClosed } = await open(listener.address);
  const started = Date.now();
  const head = 'POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: A.B\r\nX-Slow: ';
  let i = 0;
  const drip = setInterval(() => !isClosed() && socket.write(head[i++ % head.length]!), 100);
  try {
    const text = await withTimeout(closed, 5000, 'the slow client is cut');
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 2500, `cut after ${took} ms (headersTimeout 1000 ms)`);
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.is(errorOf(text).code, 408);
  } finally {
    clearInterval(drip);
  }
});

limits('cuts a client sending its body slowly once requestTimeout passes: 408 error JSON', async () => {
  const { seen, handler } = recorder();
  const listener = await listen(handler, { headersTimeout: 500, requestTimeout: 1200 });
  const { socket, closed, isClosed } = await open(listener.address);
  const started = Date.now();
  socket.write('POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: A.B\r\nContent-Length: 1000\r\n\r\n');
  const drip = setInterval(() => !isClosed() && socket.write(' '), 100);
  try {
    const text = await withTimeout(closed, 5000, 'the slow body is cut');
    const took = Date.now() - started;
    assert.ok(took >= 1100 && took < 3000, `cut after ${took} ms (requestTimeout 1200 ms)`);
    assert.match(text, /408/);
    assert.is(seen.length, 0);
  } finally {
    clearInterval(drip);
  }
});

limits('closes a keep-alive connection idle past keepAliveTimeout', async () => {
  const listener = await listen(recorder().handler, { keepAliveTimeout: 300 });
  const { socket, closed } = await open(listener.address);
  socket.write('POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: A.B\r\nContent-Length: 2\r\n\r\n{}');
  const started = Date.now();
  const text = await withTimeout(closed, 5000, 'the idle keep-alive connection is closed');
  const took = Date.now() - started;
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.ok(took >= 250 && took < 2000, `closed after ${took} ms (keepAliveTimeout 300 ms)`);
});

limits('holds 50 idle connections to the cap of 20, and a caller still gets through', async () => {
  const listener = await listen(recorder().handler, { maxConnections: 20 });
  const idle = [];
  for (let i = 0; i < 50; i++) idle.push(await open(listener.address));
  await sleep(100);
  const left = idle.filter((c) => !c.isClosed()).length;
  assert.ok(left <= 20, `${left} of 50 idle connections open (cap 20)`);
  assert.ok(left >= 15, `${left} of 50 idle connections open: the newest stay`);
  const res = await send(listener.address, { headers: mucp('A.B'), body: '{"ok":1}' });
  assert.is(res.status, 200);
  assert.equal(json(res), { ok: 1 });
});

limits('refuses a connection past the cap with a 503 error JSON when every open one is busy', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const handler: RequestHandler = async (request, reply) => {
    await gate;
    await reply(serverResponse('{}'));
  };
  const listener = await listen(handler, { maxConnections: 3 });
  const busy = [0, 1, 2].map(() =>
    send(listener.address, { headers: mucp('A.B'), body: '{}' }).then(
      (r) => r.status,
      (err: Error) => err.message,
    ),
  );
  try {
    await sleep(200);
    const text = await raw(
      listener.address,
      'POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: A.B\r\nContent-Length: 2\r\n\r\n{}',
    );
    assert.match(text, /^HTTP\/1\.1 503 /);
    assert.match(errorOf(text).detail, /too many connections/);
  } finally {
    release();
  }
  assert.equal(await Promise.all(busy), [200, 200, 200]);
});

limits('answers headers past 16 KiB with a 431 error JSON', async () => {
  const listener = await listen(recorder().handler);
  const text = await raw(
    listener.address,
    `POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: A.B\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n{}`,
  );
  assert.match(text, /^HTTP\/1\.1 431 /);
  assert.is(errorOf(text).status, 'Request Header Fields Too Large');
});

limits('refuses settings that cannot work, saying how', async () => {
  const { createHttpListener } = await import('../../../../runtime/plugins/http/listener.js');
  const { rejects } = await import('../../../helpers.js');
  const err = (await rejects(() =>
    createHttpListener(recorder().handler, { headersTimeout: 5000, requestTimeout: 1000 }),
  )) as Error;
  assert.match(err.message, /headersTimeout \(5000 ms\) must not be longer than requestTimeout \(1000 ms\)/);
  const zero = (await rejects(() => createHttpListener(recorder().handler, { maxConnections: 0 }))) as Error;
  assert.match(zero.message, /maxConnections must be a positive number of connections/);
});

limits.run();
