import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { Metadata, MicroError } from '../../../../runtime/core/index.js';
import { createHttpListener } from '../../../../runtime/plugins/http/listener.js';
import { serverResponse } from '../../../contracts/transport.js';
import { sleep, withTimeout } from '../../../helpers.js';
import { closeAll, json, listen, mucp, recorder, send, track } from './wire.js';

// ---
const requests = suite('HttpListener: requests');
requests.after.each(closeAll);

requests('takes POST / with mucp headers; metadata is every header but the transport ones, lower case', async () => {
  const { seen, handler } = recorder();
  const listener = await listen(handler);
  const res = await send(listener.address, {
    headers: mucp('Greeter.Hello', { 'Micro-Id': 'req-1', 'X-Trace': 'abc', 'User-Agent': 'test', Accept: '*/*' }),
    body: '{"name":"Ada"}',
  });
  assert.is(res.status, 200);
  assert.is(res.body, '{"name":"Ada"}');
  const request = seen[0]!;
  assert.equal(
    [request.id, request.service, request.endpoint, request.contentType],
    ['req-1', 'greeter', 'Greeter.Hello', 'application/json'],
  );
  assert.is(request.metadata.get('x-trace'), 'abc');
  assert.is(request.metadata.get('micro-endpoint'), 'Greeter.Hello');
  for (const name of ['host', 'user-agent', 'accept', 'connection', 'content-length'])
    assert.not.ok(request.metadata.has(name), `${name} is not metadata`);
  assert.is(res.headers['micro-id'], 'req-1');
  assert.is(res.headers['x-endpoint'], 'Greeter.Hello');
  assert.is(res.headers['content-type'], 'application/json');
});

requests('takes the curl form POST /<service>/<Service.Method>, URL-decoded, and makes up a Micro-Id', async () => {
  const { seen, handler } = recorder();
  const listener = await listen(handler);
  const res = await send(listener.address, {
    path: '/my%20svc/Greeter.Hello?x=1',
    headers: { 'Content-Type': 'application/json' },
    body: '{}',
  });
  assert.is(res.status, 200);
  assert.is(seen[0]!.service, 'my svc');
  assert.is(seen[0]!.endpoint, 'Greeter.Hello');
  // What `curl -d '{"name":"Ada"}' <address>/greeter/Greeter.Hello` sends: a JSON body labelled as a form.
  await send(listener.address, {
    path: '/greeter/Greeter.Hello',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: '{"name":"Ada"}',
  });
  assert.is(seen[1]!.contentType, 'application/json');
  // What fetch(url, { method: 'POST', body: '{…}' }) sends: text/plain.
  await send(listener.address, {
    path: '/greeter/Greeter.Hello',
    headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
    body: '{}',
  });
  assert.is(seen[2]!.contentType, 'application/json');
  // On the mucp form the content type is the caller's to choose, and is kept.
  await send(listener.address, {
    path: '/',
    headers: { 'Micro-Service': 'greeter', 'Micro-Endpoint': 'Greeter.Hello', 'Content-Type': 'text/plain' },
    body: '{}',
  });
  assert.is(seen[3]!.contentType, 'text/plain');
  assert.match(String(res.headers['micro-id']), /^[0-9a-f-]{36}$/);
  assert.is(seen[0]!.id, res.headers['micro-id']);
});

requests('passes GET /health and /healthz to the handler as probes for Debug.Health', async () => {
  const { seen, handler } = recorder();
  const listener = await listen(handler);
  for (const path of ['/health', '/healthz'])
    assert.is((await send(listener.address, { method: 'GET', path })).status, 200);
  assert.equal(
    seen.map((r) => [r.probe, r.endpoint]),
    [
      [true, 'Debug.Health'],
      [true, 'Debug.Health'],
    ],
  );
});

requests('answers with the status, content type and metadata headers of the reply', async () => {
  const listener = await listen(async (_r, reply) =>
    reply({
      status: 201,
      contentType: 'text/plain',
      body: new TextEncoder().encode('made'),
      metadata: new Metadata({ 'X-Made': 'yes', 'content-length': '999' }),
    }),
  );
  const res = await send(listener.address, { headers: mucp('A.B'), body: '' });
  assert.equal(
    [res.status, res.headers['content-type'], res.headers['x-made'], res.body],
    [201, 'text/plain', 'yes', 'made'],
  );
});

requests('accepts a body of exactly maxBodySize bytes', async () => {
  const { seen, handler } = recorder();
  const listener = await listen(handler, { maxBodySize: 1024 });
  const res = await send(listener.address, {
    headers: mucp('A.B'),
    chunks: [new Uint8Array(600), new Uint8Array(424)],
  });
  assert.is(res.status, 200);
  assert.is(seen[0]!.body.byteLength, 1024);
});

requests.run();

// ---
const closing = suite('HttpListener: close and flush');
closing.after.each(closeAll);

closing('close() waits for an in-flight slow reply, which says Connection: close, then resolves promptly', async () => {
  let entered!: () => void;
  const inHandler = new Promise<void>((r) => (entered = r));
  const listener = await listen(
    async (_r, reply) => {
      entered();
      await sleep(300);
      await reply(serverResponse('{"slow":true}'));
    },
    { closeTimeout: 10_000 },
  );
  const pending = send(listener.address, { headers: mucp('Slow.Reply'), body: '{}' });
  await withTimeout(inHandler, 3000, 'the handler to start');
  const started = Date.now();
  let closed = 0;
  const closeDone = listener.close().then(() => (closed = Date.now()));
  const res = await pending;
  await withTimeout(closeDone, 3000, 'close');
  assert.equal(json(res), { slow: true });
  assert.is(res.headers.connection, 'close');
  assert.ok(closed - started >= 250, 'close waited for the reply');
  assert.ok(closed - started < 2000, `close resolved promptly (${closed - started} ms)`);
});

closing('close() right after a keep-alive reply resolves at once, and the caller has the whole body', async () => {
  const body = new Uint8Array(2 * 1024 * 1024).fill(120);
  let replied!: () => void;
  const flushed = new Promise<void>((r) => (replied = r));
  const listener = await listen(
    async (_r, reply) => {
      await reply(serverResponse(body, {}, 'application/octet-stream'));
      replied();
    },
    { closeTimeout: 10_000 },
  );
  const res = await withTimeout(
    fetch(`${listener.address}/`, { method: 'POST', headers: mucp('Big.Get'), body: '{}' }),
    5000,
    'fetch',
  );
  await withTimeout(flushed, 3000, 'reply');
  const started = Date.now();
  await withTimeout(listener.close(), 3000, 'close');
  assert.ok(Date.now() - started < 1000, 'idle keep-alive connections were closed, not waited out');
  assert.is((await withTimeout(res.arrayBuffer(), 3000, 'body')).byteLength, body.byteLength);
});

closing('reply() resolves only once the caller has read the whole body', async () => {
  const size = 24 * 1024 * 1024;
  let resolvedAt = 0;
  let received = 0;
  const listener = await listen(async (_r, reply) => {
    await reply(serverResponse(new Uint8Array(size), {}, 'application/octet-stream'));
    resolvedAt = received;
  });
  const url = new URL(listener.address);
  const done = new Promise<void>((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: mucp('Big.Get'), agent: false }, (res) => {
      res.pause(); // a slow reader: nothing is read for a while
      setTimeout(() => {
        assert.is(resolvedAt, 0, 'reply() still pending while the caller reads nothing');
        res.on('data', (c: Buffer) => (received += c.length));
        res.on('end', resolve);
        res.resume();
      }, 200);
    });
    req.on('error', reject);
    req.end('{}');
  });
  await withTimeout(done, 10_000, 'reading the body');
  await sleep(20);
  assert.is(received, size);
  assert.ok(resolvedAt > 0, 'reply() resolved');
  assert.ok(resolvedAt > size / 2, `reply() resolved after most of the body was read (${resolvedAt} of ${size})`);
});

closing(
  'rejects reply() when the caller is gone, and answers requests after close() with 503 or a refused connection',
  async () => {
    let result!: (value: unknown) => void;
    const outcome = new Promise<unknown>((r) => (result = r));
    const listener = await listen(async (_r, reply) => {
      await sleep(100);
      result(
        await reply(serverResponse('{}')).then(
          () => 'resolved',
          (e: unknown) => e,
        ),
      );
    });
    const { hostname, port } = new URL(listener.address);
    const socket = connect(Number(port), hostname, () =>
      socket.write('POST / HTTP/1.1\r\nMicro-Endpoint: A.B\r\nContent-Length: 2\r\n\r\n{}'),
    );
    await sleep(30);
    socket.destroy();
    const err = await withTimeout(outcome, 3000, 'reply');
    assert.instance(err, MicroError);
    await listener.close();
    const refused = await send(listener.address, { headers: mucp('A.B'), body: '{}' }).catch(
      (e: NodeJS.ErrnoException) => e.code,
    );
    assert.is(refused, 'ECONNREFUSED');
  },
);

closing.run();

// ---
const factory = suite('createHttpListener');
factory.after.each(closeAll);

factory('binds 127.0.0.1 on a free port by default and reports http://127.0.0.1:<port>', async () => {
  const listener = track(await createHttpListener(recorder().handler));
  assert.match(listener.address, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.is((await send(listener.address, { method: 'GET', path: '/health' })).status, 200);
});

factory('registers the advertise address when one is given', async () => {
  const listener = await listen(recorder().handler, { advertise: 'http://10.0.0.5:8080' });
  assert.is(listener.address, 'http://10.0.0.5:8080');
});

factory('rejects bad options with a message that says how to fix them', async () => {
  for (const options of [
    { maxBodySize: 0 },
    { closeTimeout: -1 },
    { address: 'nonsense' },
    { address: 'https://127.0.0.1:0' },
  ]) {
    const err = await createHttpListener(recorder().handler, options).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    assert.ok(err, JSON.stringify(options));
    assert.match(err.message, /must|looks like|plain http/);
  }
});

factory('fails clearly when the port is taken', async () => {
  const first = await listen(recorder().handler);
  const err = await createHttpListener(recorder().handler, { address: first.address }).then(
    () => undefined,
    (e: unknown) => e as MicroError,
  );
  assert.match(String(err?.message), /cannot bind .*EADDRINUSE/);
});

factory.run();
