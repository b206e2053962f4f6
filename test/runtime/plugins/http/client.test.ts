import { getEventListeners } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isMicroError } from '../../../../runtime/core/index.js';
import { HttpClient } from '../../../../runtime/plugins/http/client.js';
import { transportRequest } from '../../../contracts/transport.js';
import { rejects, withTimeout } from '../../../helpers.js';

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A bare node:http server whose answer the test writes: stands in for any HTTP peer, well-behaved or not. */
async function peer(answer: (res: ServerResponse) => void): Promise<{ address: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers, body });
      answer(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

let servers: Server[] = [];
const node = (address: string) => ({ id: 'n', address, metadata: {} });
const client = new HttpClient();

// ---
const http = suite('HttpClient');
http.after.each(async () => {
  const all = servers;
  servers = [];
  for (const s of all) s.closeAllConnections();
  await withTimeout(Promise.all(all.map((s) => new Promise((r) => s.close(r)))), 3000, 'closing peers');
});

http('POSTs to <address>/ with the mucp headers, metadata as headers and the body', async () => {
  const p = await peer((res) => res.end('{}'));
  const request = transportRequest('Greeter.Hello', '{"name":"Ada"}', { 'X-Trace': 'abc', authorization: 'Bearer t' });
  await withTimeout(client.call(node(p.address), request));
  await withTimeout(client.call(node(`${p.address}/`), request));
  assert.equal(
    p.seen.map((s) => s.url),
    ['/', '/'],
  );
  const { headers, body } = p.seen[0]!;
  assert.equal(
    [headers['micro-service'], headers['micro-endpoint'], headers['micro-id'], headers['content-type']],
    ['greeter', 'Greeter.Hello', request.id, 'application/json'],
  );
  assert.equal([headers['x-trace'], headers.authorization, body], ['abc', 'Bearer t', '{"name":"Ada"}']);
});

http('reads response metadata from headers, leaving out transport-level ones', async () => {
  const p = await peer((res) => {
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'X-Result': 'yes',
      'Micro-Id': 'r1',
      'Keep-Alive': 'timeout=5',
    });
    res.end('{"ok":true}');
  });
  const response = await withTimeout(client.call(node(p.address), transportRequest('A.B')));
  assert.is(response.error, undefined);
  assert.is(response.contentType, 'application/json');
  assert.equal(response.metadata.toJSON(), { 'micro-id': 'r1', 'x-result': 'yes' });
});

http('turns a non-JSON error body into a generic remote error with that status, never a crash', async () => {
  const p = await peer((res) => {
    res.writeHead(502, { 'Content-Type': 'text/html' });
    res.end('<html>bad gateway</html>');
  });
  const response = await withTimeout(client.call(node(p.address), transportRequest('A.B')));
  assert.ok(isMicroError(response.error));
  assert.equal(response.error.toJSON(), { id: 'greeter', code: 502, detail: 'Bad Gateway', status: 'Bad Gateway' });
  assert.not.ok(response.error.retryable, 'a proxy may have passed the request on: never sent again');
});

http('reads the error from the body, else from Micro-Error, also on a 2xx status', async () => {
  const fromBody = await peer((res) => {
    res.writeHead(404, { 'Micro-Error': '{"id":"short","code":404,"detail":"cut","status":"Not Found"}' });
    res.end('{"id":"svc","code":404,"detail":"endpoint X.Y not found","status":"Not Found"}');
  });
  const fromHeader = await peer((res) => {
    res.writeHead(200, { 'Micro-Error': '{"id":"svc","code":409,"detail":"caf\\u00e9","status":"Conflict"}' });
    res.end('not json');
  });
  const a = await withTimeout(client.call(node(fromBody.address), transportRequest('X.Y')));
  assert.equal(a.error?.toJSON(), { id: 'svc', code: 404, detail: 'endpoint X.Y not found', status: 'Not Found' });
  const b = await withTimeout(client.call(node(fromHeader.address), transportRequest('X.Y')));
  assert.equal(b.error?.toJSON(), { id: 'svc', code: 409, detail: 'café', status: 'Conflict' });
});

http('rejects with a retryable 503 when nothing listens, with the fetch error as cause', async () => {
  const p = await peer((res) => res.end());
  await new Promise((r) => p.server.close(r));
  const err = await rejects(() => withTimeout(client.call(node(p.address), transportRequest('A.B'))));
  assert.ok(isMicroError(err));
  assert.is(err.code, 503);
  assert.ok(err.retryable);
  assert.ok(err.unreachable, 'nothing was sent: the node is gone');
  assert.match(err.detail, /ECONNREFUSED/);
  assert.ok(err.cause);
});

http('rejects with a 408 that is not retryable when the signal aborts or the deadline passes', async () => {
  const p = await peer((res) => setTimeout(() => res.end('{}'), 1000).unref());
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const aborted = await rejects(() =>
    withTimeout(client.call(node(p.address), transportRequest('A.B'), { signal: controller.signal })),
  );
  assert.equal([(aborted as { code: number }).code, (aborted as { detail: string }).detail], [408, 'request aborted']);
  const expired = await rejects(() =>
    withTimeout(
      client.call(node(p.address), transportRequest('A.B'), {
        deadline: Date.now() + 50,
        signal: new AbortController().signal,
      }),
    ),
  );
  assert.ok(isMicroError(expired));
  assert.equal([expired.code, expired.detail, expired.retryable], [408, 'deadline exceeded', false]);
});

http('sends nothing for an aborted signal, a past deadline or metadata that cannot be a header', async () => {
  const p = await peer((res) => res.end('{}'));
  const controller = new AbortController();
  controller.abort();
  assert.is(
    (
      (await rejects(() => client.call(node(p.address), transportRequest('A.B'), { signal: controller.signal }))) as {
        code: number;
      }
    ).code,
    408,
  );
  assert.is(
    (
      (await rejects(() => client.call(node(p.address), transportRequest('A.B'), { deadline: Date.now() - 1 }))) as {
        code: number;
      }
    ).code,
    408,
  );
  for (const metadata of [{ 'x-bad': 'line\nbreak' }, { 'x-wide': '名前' }, { 'bad key': 'v' }] as Record<
    string,
    string
  >[]) {
    const err = await rejects(() => client.call(node(p.address), transportRequest('A.B', '{}', metadata)));
    assert.ok(isMicroError(err));
    assert.is(err.code, 400);
    assert.not.ok(err.retryable);
  }
  assert.is(p.seen.length, 0);
});

http('leaves no listener on a long-lived caller signal shared by many calls', async () => {
  const p = await peer((res) => res.end('{}'));
  const shared = new AbortController().signal;
  await withTimeout(
    Promise.all(
      Array.from({ length: 20 }, () => client.call(node(p.address), transportRequest('A.B'), { signal: shared })),
    ),
  );
  await withTimeout(
    client.call(node(p.address), transportRequest('A.B'), { signal: shared, deadline: Date.now() + 5000 }),
  );
  assert.is(getEventListeners(shared, 'abort').length, 0);
});

http(
  'bounds a call with only a deadline without a signal for fetch: a 408 at the deadline, a late reply thrown away',
  async () => {
    const p = await peer((res) => setTimeout(() => res.end('{"late":true}'), 150).unref());
    const seen: (AbortSignal | null | undefined)[] = [];
    const spy = new HttpClient({
      fetch: (input, init) => {
        seen.push(init?.signal);
        return fetch(input, init);
      },
    });
    const expired = await rejects(() =>
      withTimeout(spy.call(node(p.address), transportRequest('A.B'), { deadline: Date.now() + 50 })),
    );
    assert.ok(isMicroError(expired));
    assert.equal([expired.code, expired.detail, expired.retryable], [408, 'deadline exceeded', false]);
    assert.equal(seen, [undefined], 'fetch got no signal');
    // The late reply comes, is thrown away, and the client goes on as before.
    await new Promise((r) => setTimeout(r, 200));
    const ok = await withTimeout(spy.call(node(p.address), transportRequest('A.B'), { deadline: Date.now() + 5000 }));
    assert.is(new TextDecoder().decode(ok.body), '{"late":true}');
    assert.equal(seen, [undefined, undefined], 'no signal again once nothing is left waiting');
  },
);

http(
  'while a call past its deadline still waits for its reply, the next calls go with a signal (aborted at theirs)',
  async () => {
    const held: { resolve: (r: Response) => void; signal: AbortSignal | null | undefined }[] = [];
    let cancelled = 0;
    const fake = ((_input: RequestInfo | URL, init?: RequestInit) =>
      new Promise<Response>((resolve, reject) => {
        held.push({ resolve, signal: init?.signal });
        init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      })) as typeof fetch;
    const c = new HttpClient({ fetch: fake });
    const call = () =>
      rejects(() => withTimeout(c.call(node('http://peer'), transportRequest('A.B'), { deadline: Date.now() + 30 })));
    const first = (await call()) as { code: number };
    assert.is(first.code, 408);
    assert.is(held[0]!.signal, undefined, 'the first call had no signal');
    const second = (await call()) as { code: number };
    assert.is(second.code, 408);
    assert.ok(held[1]!.signal?.aborted, 'the second had one, aborted at its deadline: its connection is closed');
    // The first reply comes at last: its body is cancelled, and the calls after go without a signal again.
    held[0]!.resolve(new Response(new ReadableStream({ cancel: () => void cancelled++ })));
    await new Promise((r) => setTimeout(r, 10));
    assert.is(cancelled, 1, 'the late body was cancelled');
    void c.call(node('http://peer'), transportRequest('A.B'), { deadline: Date.now() + 30 }).catch(() => {});
    assert.is(held[2]!.signal, undefined);
    held[2]!.resolve(new Response('{}'));
  },
);

http('uses the fetch from its options, called without a this (platform fetches reject any other)', async () => {
  const thisArgs: unknown[] = [];
  const fake = function (this: unknown, _input: RequestInfo | URL, _init?: RequestInit) {
    thisArgs.push(this);
    return Promise.resolve(new Response('{"fake":true}', { headers: { 'content-type': 'application/json' } }));
  } as typeof fetch;
  const response = await new HttpClient({ fetch: fake }).call(node('https://example.invalid'), transportRequest('A.B'));
  assert.is(new TextDecoder().decode(response.body), '{"fake":true}');
  assert.equal(thisArgs, [undefined]);
});

http(
  'never follows a redirect: a 307 to another peer fails the call, not sent again (1 request, 0 to the target)',
  async () => {
    const target = await peer((res) => res.end('{"ran":true}'));
    const p = await peer((res) => {
      res.writeHead(307, { location: `${target.address}/` });
      res.end();
    });
    const err = await rejects(() => withTimeout(client.call(node(p.address), transportRequest('A.B', '{"n":1}'))));
    assert.ok(isMicroError(err));
    assert.is(err.code, 503);
    assert.is(err.retryable, false);
    assert.equal([p.seen.length, target.seen.length], [1, 0]);
  },
);

http.run();
