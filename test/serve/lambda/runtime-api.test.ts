import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { request, type ClientRequest } from 'node:http';
import { MAX_RESPONSE_BYTES, RuntimeApi, type InvokeResult } from '../../../serve/lambda/runtime-api.js';
import { sleep, withTimeout } from '../../helpers.js';

// ---
const api = suite('RuntimeApi');
const ARN = 'arn:aws:lambda:us-east-1:000000000000:function:test';
let server: RuntimeApi;
let timedOut: string[];
api.before.each(async () => {
  timedOut = [];
  server = await RuntimeApi.start({ functionArn: ARN, onTimeout: (id) => timedOut.push(id) });
});
api.after.each(() => server.close());

const url = (path: string) => `http://${server.address}/2018-06-01/runtime${path}`;
const next = () => withTimeout(fetch(url('/invocation/next')), 3000, 'GET /invocation/next');
const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  withTimeout(fetch(url(path), { method: 'POST', body, headers }), 3000, `POST ${path}`);

api('listens on 127.0.0.1', () => {
  assert.match(server.address, /^127\.0\.0\.1:\d+$/);
});

api('hands an event out with the Lambda-Runtime headers and resolves with the posted response', async () => {
  const before = Date.now();
  const result = server.invoke(
    { hello: 'world' },
    { timeoutMs: 2000, requestId: 'req-1', clientContext: '{"custom":{"a":"b"}}' },
  );
  const res = await next();
  assert.is(res.status, 200);
  assert.equal(await res.json(), { hello: 'world' });
  assert.is(res.headers.get('lambda-runtime-aws-request-id'), 'req-1');
  assert.is(res.headers.get('lambda-runtime-invoked-function-arn'), ARN);
  assert.is(res.headers.get('lambda-runtime-client-context'), '{"custom":{"a":"b"}}');
  assert.match(
    res.headers.get('lambda-runtime-trace-id') ?? '',
    /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/,
  );
  const deadline = Number(res.headers.get('lambda-runtime-deadline-ms'));
  assert.ok(deadline >= before + 2000 && deadline <= Date.now() + 2000, `deadline ${deadline}`);
  const ack = await post('/invocation/req-1/response', '{"ok":true}');
  assert.is(ack.status, 202);
  assert.equal(await ack.json(), { status: 'OK' });
  assert.equal(await withTimeout(result, 1000, 'invoke'), { requestId: 'req-1', payload: '{"ok":true}' });
});

api('waits for an event when the runtime asks first, and hands out one event at a time', async () => {
  const asked = next();
  await sleep(50);
  const first = server.invoke(1, { timeoutMs: 2000, requestId: 'a' });
  const second = server.invoke(2, { timeoutMs: 2000, requestId: 'b' });
  assert.is((await asked).headers.get('lambda-runtime-aws-request-id'), 'a');
  assert.is(server.pending, 2);
  // The second event is not handed out while the first is running.
  const secondAsk = next();
  const early = await Promise.race([secondAsk.then(() => 'handed out'), sleep(100).then(() => 'waiting')]);
  assert.is(early, 'waiting');
  await post('/invocation/a/response', '"one"');
  const res = await secondAsk;
  assert.is(res.headers.get('lambda-runtime-aws-request-id'), 'b');
  assert.is(await res.text(), '2');
  await post('/invocation/b/response', '"two"');
  assert.equal(await withTimeout(Promise.all([first, second]), 1000, 'invocations'), [
    { requestId: 'a', payload: '"one"' },
    { requestId: 'b', payload: '"two"' },
  ]);
  assert.is(server.pending, 0);
});

api('passes bytes through as the event, unchanged', async () => {
  const result = server.invoke(new TextEncoder().encode('{"raw": 1}'), { timeoutMs: 2000, requestId: 'raw' });
  assert.is(await (await next()).text(), '{"raw": 1}');
  await post('/invocation/raw/response', 'null');
  assert.equal(await result, { requestId: 'raw', payload: 'null' });
});

api('resolves with the error a runtime reports, type from the header when the body has none', async () => {
  const reported = server.invoke({}, { timeoutMs: 2000, requestId: 'e1' });
  await next();
  const ack = await post(
    '/invocation/e1/error',
    JSON.stringify({ errorType: 'TypeError', errorMessage: 'bad', trace: ['TypeError: bad'] }),
    { 'lambda-runtime-function-error-type': 'TypeError' },
  );
  assert.is(ack.status, 202);
  assert.equal(await reported, {
    requestId: 'e1',
    error: { errorType: 'TypeError', errorMessage: 'bad', trace: ['TypeError: bad'] },
  });

  const headerOnly = server.invoke({}, { timeoutMs: 2000, requestId: 'e2' });
  await next();
  await post('/invocation/e2/error', '', { 'lambda-runtime-function-error-type': 'Runtime.Unhandled' });
  assert.equal(await headerOnly, { requestId: 'e2', error: { errorType: 'Runtime.Unhandled', errorMessage: '' } });
});

api('answers 400 for an invocation that is not running and 404 for an unknown route', async () => {
  const unknown = await post('/invocation/nobody/response', '{}');
  assert.is(unknown.status, 400);
  assert.is(((await unknown.json()) as { errorType: string }).errorType, 'InvalidRequestID');
  const route = await withTimeout(fetch(url('/invocation/x/whatever')), 3000, 'fetch');
  assert.is(route.status, 404);
  await route.body?.cancel();
});

api('times an invocation out like Lambda and tells the owner to stop the environment', async () => {
  const result = server.invoke({}, { timeoutMs: 100, requestId: 'slow' });
  await next();
  const r = (await withTimeout(result, 2000, 'timeout')) as Extract<InvokeResult, { error: unknown }>;
  assert.equal(r.error, {
    errorType: 'Sandbox.Timedout',
    errorMessage: 'RequestId: slow Error: Task timed out after 0.10 seconds',
  });
  assert.equal(timedOut, ['slow']);
  // A late response is refused: the invocation is over.
  assert.is((await post('/invocation/slow/response', '{}')).status, 400);
});

api("refuses a response over 6 MB and fails the invocation with Lambda's error", async () => {
  const result = server.invoke({}, { timeoutMs: 5000, requestId: 'big' });
  await next();
  const res = await post('/invocation/big/response', 'x'.repeat(MAX_RESPONSE_BYTES + 1));
  assert.is(res.status, 413);
  await res.body?.cancel();
  assert.is(
    ((await result) as Extract<InvokeResult, { error: unknown }>).error.errorType,
    'Function.ResponseSizeTooLarge',
  );
});

api('serves an init error to the invocation waiting, or else to the next one', async () => {
  const waiting = server.invoke({}, { timeoutMs: 2000, requestId: 'w' });
  server.runtimeStarting();
  const init = JSON.stringify({ errorType: 'Runtime.ImportModuleError', errorMessage: 'no index' });
  assert.is((await post('/init/error', init)).status, 202);
  assert.equal(await withTimeout(waiting, 1000, 'init error'), {
    requestId: 'w',
    error: { errorType: 'Runtime.ImportModuleError', errorMessage: 'no index' },
  });
  assert.is((await post('/init/error', init)).status, 202);
  assert.equal(await withTimeout(server.invoke({}, { timeoutMs: 2000, requestId: 'later' }), 1000, 'kept init error'), {
    requestId: 'later',
    error: { errorType: 'Runtime.ImportModuleError', errorMessage: 'no index' },
  });
  assert.is(server.pending, 0);
});

api(
  'after a timeout, the process being stopped gets no further event, even when it asks: the next goes to the process started after it',
  async () => {
    server.runtimeStarting();
    const slow = server.invoke({}, { timeoutMs: 100, requestId: 'slow' });
    await next();
    await withTimeout(slow, 2000, 'timeout');
    const after = server.invoke({}, { timeoutMs: 2000, requestId: 'after' });
    // The timed-out process answers at its own deadline (refused: over) and asks for the next event before its
    // stop reaches it: the request is left unanswered (the process is being killed).
    assert.is((await post('/invocation/slow/response', '{}')).status, 400);
    const asked = new AbortController();
    let answered = false;
    void fetch(url('/invocation/next'), { signal: asked.signal }).then(
      () => (answered = true),
      () => {},
    );
    await sleep(100);
    assert.not.ok(answered, 'the stopping process got no event');
    asked.abort();
    server.runtimeExited('signal: killed');
    server.runtimeStarting();
    const event = await next();
    assert.is(event.headers.get('lambda-runtime-aws-request-id'), 'after', 'the fresh process gets the event');
    await event.body?.cancel();
    assert.is((await post('/invocation/after/response', '{"ok":1}')).status, 202);
    assert.equal(await after, { requestId: 'after', payload: '{"ok":1}' });
  },
);

api(
  'fails the running invocation, or one waiting on a runtime that died in its init, when the runtime exits',
  async () => {
    server.runtimeStarting();
    const first = server.invoke({}, { timeoutMs: 2000, requestId: 'crashed-in-init' });
    server.runtimeExited('exit status 1');
    assert.equal(await first, {
      requestId: 'crashed-in-init',
      error: {
        errorType: 'Runtime.ExitError',
        errorMessage: 'RequestId: crashed-in-init Error: Runtime exited with error: exit status 1',
      },
    });
    server.runtimeStarting();
    const running = server.invoke({}, { timeoutMs: 2000, requestId: 'running' });
    await next();
    server.runtimeExited('signal: killed');
    assert.is(
      ((await running) as Extract<InvokeResult, { error: unknown }>).error.errorMessage,
      'RequestId: running Error: Runtime exited with error: signal: killed',
    );
  },
);

api('rejects what is still queued when closed', async () => {
  const queued = server.invoke({}, { timeoutMs: 2000 });
  await server.close();
  const err = await queued.then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(String(err?.message), /closed before the invocation finished/);
  server = await RuntimeApi.start({ functionArn: ARN }); // for after.each
});

api.run();

// ---
const streamed = suite('RuntimeApi streamed responses');
let stream: RuntimeApi;
let stopped: string[];
streamed.before.each(async () => {
  stopped = [];
  stream = await RuntimeApi.start({ functionArn: ARN, onTimeout: (id) => stopped.push(id) });
});
streamed.after.each(() => stream.close());

/** A streamed response as the RIC posts it: chunked, `Lambda-Runtime-Function-Response-Mode: streaming`. */
function postStream(id: string): ClientRequest {
  const [host, port] = stream.address.split(':');
  const req = request({
    host,
    port: Number(port),
    method: 'POST',
    path: `/2018-06-01/runtime/invocation/${id}/response`,
    headers: {
      'Lambda-Runtime-Function-Response-Mode': 'streaming',
      'Content-Type': 'application/x-ndjson',
      Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body',
    },
  });
  req.on('error', () => {});
  return req;
}

const nextEvent = async () => {
  const res = await withTimeout(fetch(`http://${stream.address}/2018-06-01/runtime/invocation/next`), 3000, 'next');
  await res.arrayBuffer();
  return res.headers.get('lambda-runtime-aws-request-id')!;
};

streamed(
  'hands the stream over at its first chunk, reads 2 chunks as they come, and ends without an error',
  async () => {
    const result = stream.invokeStreaming({}, { timeoutMs: 5000, requestId: 's1' });
    await nextEvent();
    const req = postStream('s1');
    req.write('{"n":2}\n');
    const r = await withTimeout(result, 3000, 'the stream');
    assert.ok('stream' in r);
    if (!('stream' in r)) return;
    assert.is(r.stream.contentType, 'application/x-ndjson');
    const chunks = r.stream.chunks[Symbol.asyncIterator]();
    assert.is(String((await withTimeout(chunks.next(), 3000, 'chunk 1')).value), '{"n":2}\n');
    req.end('{"n":1}\n');
    assert.is(String((await withTimeout(chunks.next(), 3000, 'chunk 2')).value), '{"n":1}\n');
    assert.ok((await withTimeout(chunks.next(), 3000, 'the end')).done);
    assert.is(await r.stream.end, undefined);
    assert.is(stream.pending, 1, 'the invocation lasts until the runtime asks for the next event');
    void fetch(`http://${stream.address}/2018-06-01/runtime/invocation/next`).catch(() => {});
    await eventuallyZero();
  },
);

streamed('reports the error of its trailers (type, base64 JSON body), streamed or buffered for invoke()', async () => {
  const error = { errorType: 'MicroError', errorMessage: '{"code":409}', trace: ['at x'] };
  const send = (id: string) => {
    const req = postStream(id);
    req.write('{"n":3}\n');
    req.addTrailers({
      'Lambda-Runtime-Function-Error-Type': 'MicroError',
      'Lambda-Runtime-Function-Error-Body': Buffer.from(JSON.stringify(error)).toString('base64'),
    });
    req.end();
  };
  const result = stream.invokeStreaming({}, { timeoutMs: 5000, requestId: 'e1' });
  await nextEvent();
  send('e1');
  const r = await withTimeout(result, 3000, 'the stream');
  if (!('stream' in r)) throw new Error('not streamed');
  const chunks: string[] = [];
  for await (const c of r.stream.chunks) chunks.push(String(c));
  assert.equal(chunks, ['{"n":3}\n']);
  assert.equal(await r.stream.end, error);
  const buffered = stream.invoke({}, { timeoutMs: 5000, requestId: 'e2' });
  await nextEvent();
  send('e2');
  assert.equal(await withTimeout(buffered, 3000, 'the buffered result'), { requestId: 'e2', error });
});

streamed('ends a stream still running at the timeout with Sandbox.Timedout and stops the runtime', async () => {
  const result = stream.invokeStreaming({}, { timeoutMs: 300, requestId: 't1' });
  await nextEvent();
  const req = postStream('t1');
  req.write('{"n":1}\n');
  const r = await withTimeout(result, 3000, 'the stream');
  if (!('stream' in r)) throw new Error('not streamed');
  r.stream.discard();
  assert.is((await withTimeout(r.stream.end, 3000, 'the end'))?.errorType, 'Sandbox.Timedout');
  assert.equal(stopped, ['t1']);
});

async function eventuallyZero(): Promise<void> {
  for (let i = 0; i < 100 && stream.pending > 0; i++) await sleep(10);
  assert.is(stream.pending, 0);
}

streamed.run();
