// The handler inside the built zip, run by the official runtime interface client against the Runtime API.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LambdaEnvironment } from '../../../serve/lambda/environment.js';
import type { InvokeResult } from '../../../serve/lambda/runtime-api.js';
import { withTimeout } from '../../helpers.js';
import { buildPackage, runWithRic, type Package } from './helpers.js';

const ERROR_400 = { id: 'lambda-fixture', code: 400, status: 'Bad Request' };

let pkg: Package;
let env: LambdaEnvironment;
let output = '';

async function invoke(event: unknown, timeoutMs = 5000): Promise<unknown> {
  const result = await withTimeout(env.invoke(event, { timeoutMs }), timeoutMs + 5000, 'invoke');
  if ('error' in result) throw new Error(`the invocation failed: ${JSON.stringify(result.error)}\n${output}`);
  return JSON.parse(result.payload);
}

async function failure(event: unknown): Promise<Extract<InvokeResult, { error: unknown }>['error']> {
  const result = await withTimeout(env.invoke(event, { timeoutMs: 5000 }), 10_000, 'invoke');
  if (!('error' in result)) throw new Error(`expected a function error, got ${result.payload}`);
  return result.error;
}

async function start(): Promise<void> {
  pkg = await buildPackage('test/fixtures/lambda/index.ts');
  env = await LambdaEnvironment.start({
    taskRoot: pkg.taskRoot,
    functionName: 'lambda-fixture',
    onOutput: (text) => (output += text),
  });
}

async function stop(): Promise<void> {
  await env?.close();
  pkg?.cleanup();
}

// ---
const direct = suite('createHandler: direct invocations');
direct.before(start);
direct.after(stop);

direct('answers {endpoint, body, metadata} with the reply and the response metadata', async () => {
  const reply = (await invoke({
    endpoint: 'Fixture.Hello',
    body: { name: 'Ada' },
    metadata: { 'X-Tenant': 'acme' },
  })) as { body: Record<string, unknown>; metadata: Record<string, string> };
  assert.is(reply.body.message, 'Hello Ada');
  assert.is(reply.body.tenant, 'acme');
  assert.is(reply.metadata['x-greeting'], 'hi');
  assert.type(reply.metadata['micro-id'], 'string');
});

direct(
  "takes the deadline from context.getRemainingTimeInMillis(), or the caller's shorter Micro-Timeout",
  async () => {
    const long = (await invoke({ endpoint: 'Fixture.Hello', body: { name: 'a' } }, 4000)) as {
      body: { remaining: number };
    };
    assert.ok(long.body.remaining > 2000 && long.body.remaining <= 4000, `remaining ${long.body.remaining}`);
    const short = (await invoke(
      { endpoint: 'Fixture.Hello', body: { name: 'a' }, metadata: { 'Micro-Timeout': '500' } },
      4000,
    )) as { body: { remaining: number } };
    assert.ok(short.body.remaining > 0 && short.body.remaining <= 500, `remaining ${short.body.remaining}`);
  },
);

direct("answers a handler's error as {error} with its code, and a thrown bug as a 500 without its detail", async () => {
  const refused = (await invoke({ endpoint: 'Fixture.Hello', body: {} })) as { error: unknown };
  assert.equal(refused.error, { ...ERROR_400, detail: 'name is required' });
  const bug = (await invoke({ endpoint: 'Fixture.Boom' })) as { error: { code: number; detail: string } };
  assert.is(bug.error.code, 500);
  assert.is(bug.error.detail, 'internal server error');
  assert.not.match(JSON.stringify(bug), 'secret internal detail');
});

direct(
  'delivers {topic, body} to the subscriber, and fails the invocation with the error JSON when it fails',
  async () => {
    assert.equal(await invoke({ topic: 'orders.created', body: { ok: true } }), { ok: true });
    const error = await failure({ topic: 'orders.created', body: { ok: false } });
    assert.is(error.errorType, 'MicroError');
    const json = JSON.parse(error.errorMessage) as { code: number; detail: string };
    assert.is(json.code, 400);
    assert.match(json.detail, /is not ok/);
  },
);

direct("answers 408 before Lambda's own timeout when the handler never returns, and fires its signal", async () => {
  // Without micro-fn's deadline, Lambda ends the invocation (Sandbox.Timedout): invoke() would throw.
  const reply = (await invoke({ endpoint: 'Fixture.Stuck' }, 1500)) as { error: { code: number; detail: string } };
  assert.is(reply.error.code, 408);
  assert.match(reply.error.detail, /Fixture.Stuck did not finish before its deadline/);
  assert.match(output, /signal fired: 408/);
  // The environment is still there for the next invocation.
  const next = (await invoke({ endpoint: 'Fixture.Hello', body: { name: 'Ada' } })) as { body: { message: string } };
  assert.is(next.body.message, 'Hello Ada');
});

direct('answers an event of no known shape with a 400 naming what it expected', async () => {
  const reply = (await invoke({ hello: 'world' })) as { error: { code: number; detail: string } };
  assert.is(reply.error.code, 400);
  assert.match(reply.error.detail, /expected a direct invocation .*Function URL.*SQS event/);
  const both = (await invoke({ endpoint: 'Fixture.Hello', topic: 'orders.created' })) as { error: { code: number } };
  assert.is(both.error.code, 400);
});

direct('tells a handler that calls out over NATS how to rebuild when the bundle was built without NATS', async () => {
  await env.close();
  env = await LambdaEnvironment.start({
    taskRoot: pkg.taskRoot,
    functionName: 'lambda-fixture',
    env: { MICRO_REGISTRY: 'nats', MICRO_REGISTRY_ADDRESS: 'nats://127.0.0.1:1' },
  });
  const reply = (await invoke({ endpoint: 'Fixture.CallOut' })) as { body: { error: string } };
  assert.match(
    reply.body.error,
    /this bundle carries only the plugins its configuration chose when it was built.*MICRO_REGISTRY=nats in its environment/,
  );
});

// ---
const url = suite('createHandler: Function URL and HTTP API (payload 2.0) requests');
url.before(start);
url.after(stop);

type HttpResult = { statusCode: number; headers: Record<string, string>; body: string; isBase64Encoded: boolean };

const httpEvent = (
  method: string,
  rawPath: string,
  body?: string,
  headers: Record<string, string> = {},
  isBase64Encoded = false,
) => ({
  version: '2.0',
  routeKey: '$default',
  rawPath,
  rawQueryString: '',
  headers: {
    'content-type': 'application/json',
    host: 'abc.lambda-url.us-east-1.on.aws',
    'x-forwarded-proto': 'https',
    ...headers,
  },
  requestContext: { requestId: 'r', http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1' } },
  body,
  isBase64Encoded,
});

url('routes POST /<service>/<Service.Method> and replies with status, metadata headers and body', async () => {
  const r = (await invoke(
    httpEvent('POST', '/lambda-fixture/Fixture.Hello', '{"name":"Ada"}', { 'x-tenant': 'acme' }),
  )) as HttpResult;
  assert.is(r.statusCode, 200);
  assert.is(r.isBase64Encoded, false);
  assert.is(r.headers['content-type'], 'application/json');
  assert.is(r.headers['x-greeting'], 'hi');
  const body = JSON.parse(r.body) as { message: string; tenant: string };
  assert.is(body.message, 'Hello Ada');
  assert.is(body.tenant, 'acme');
});

url('routes mucp headers on POST / and decodes a base64 body', async () => {
  const body = Buffer.from('{"name":"Grace"}').toString('base64');
  const r = (await invoke(
    httpEvent(
      'POST',
      '/',
      body,
      { 'micro-service': 'lambda-fixture', 'micro-endpoint': 'Fixture.Hello', 'micro-id': 'call-7' },
      true,
    ),
  )) as HttpResult;
  assert.is(r.statusCode, 200);
  assert.is(r.headers['micro-id'], 'call-7');
  assert.is((JSON.parse(r.body) as { message: string }).message, 'Hello Grace');
});

url(
  'takes a form or text body on the path route as JSON (curl -d, fetch with a string), as the gateway does',
  async () => {
    for (const type of ['application/x-www-form-urlencoded', 'text/plain;charset=UTF-8']) {
      const r = (await invoke(
        httpEvent('POST', '/lambda-fixture/Fixture.Hello', '{"name":"Ada"}', { 'content-type': type }),
      )) as HttpResult;
      assert.is(r.statusCode, 200, type);
      assert.is((JSON.parse(r.body) as { message: string }).message, 'Hello Ada');
    }
    // Named by its headers, a request means what it says.
    const headers = {
      'micro-service': 'lambda-fixture',
      'micro-endpoint': 'Fixture.Hello',
      'content-type': 'text/plain',
    };
    const r = (await invoke(httpEvent('POST', '/', '{"name":"Ada"}', headers))) as HttpResult;
    assert.is(r.statusCode, 400);
    assert.match(r.body, 'unsupported content type text/plain');
  },
);

url('answers errors as error JSON with the matching status and Micro-Error', async () => {
  const refused = (await invoke(httpEvent('POST', '/lambda-fixture/Fixture.Hello', '{}'))) as HttpResult;
  assert.is(refused.statusCode, 400);
  assert.equal(JSON.parse(refused.body), { ...ERROR_400, detail: 'name is required' });
  assert.equal(JSON.parse(refused.headers['micro-error']!), JSON.parse(refused.body));
  const missing = (await invoke(httpEvent('POST', '/lambda-fixture/Fixture.Nope', '{}'))) as HttpResult;
  assert.is(missing.statusCode, 404);
  const malformed = (await invoke(httpEvent('POST', '/lambda-fixture/Fixture.Hello', '{"name":'))) as HttpResult;
  assert.is(malformed.statusCode, 400);
  const method = (await invoke(httpEvent('DELETE', '/lambda-fixture/Fixture.Hello'))) as HttpResult;
  assert.is(method.statusCode, 405);
  const noRoute = (await invoke(httpEvent('POST', '/', '{}'))) as HttpResult;
  assert.is(noRoute.statusCode, 400);
  assert.match(JSON.parse(noRoute.body).detail, /POST \/<service>\/<Service.Method>/);
});

url("answers 408 before Lambda's own timeout when the handler never returns", async () => {
  const r = (await invoke(httpEvent('POST', '/lambda-fixture/Fixture.Stuck', '{}'), 1500)) as HttpResult;
  assert.is(r.statusCode, 408);
  assert.is(JSON.parse(r.body).code, 408);
});

url('answers GET /health without running a handler', async () => {
  const r = (await invoke(httpEvent('GET', '/health'))) as HttpResult;
  assert.is(r.statusCode, 200);
  assert.equal(JSON.parse(r.body), { status: 'ok' });
});

// ---
const sqs = suite('createHandler: SQS batches');
sqs.before(start);
sqs.after(stop);

const record = (messageId: string, body: unknown, extra: Record<string, unknown> = {}) => ({
  messageId,
  receiptHandle: `handle-${messageId}`,
  body: JSON.stringify(body),
  attributes: { ApproximateReceiveCount: '1', SentTimestamp: '0' },
  messageAttributes: {},
  md5OfBody: '',
  eventSource: 'aws:sqs',
  eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:orders',
  awsRegion: 'us-east-1',
  ...extra,
});

sqs('runs every record and reports only the failed ones in batchItemFailures', async () => {
  const reply = await invoke({
    Records: [
      record('m1', { ok: true }),
      record('m2', { ok: false }),
      record('m3', { ok: true }),
      record('m4', 'not an object'),
    ],
  });
  assert.equal(reply, { batchItemFailures: [{ itemIdentifier: 'm2' }, { itemIdentifier: 'm4' }] });
});

sqs('takes the topic from the Micro-Topic attribute, and fails a record whose topic has no subscriber', async () => {
  const attr = (topic: string) => ({
    messageAttributes: { 'Micro-Topic': { dataType: 'String', stringValue: topic } },
  });
  const reply = await invoke({
    Records: [record('a', { ok: true }, attr('orders.created')), record('b', { ok: true }, attr('orders.deleted'))],
  });
  assert.equal(reply, { batchItemFailures: [{ itemIdentifier: 'b' }] });
});

sqs('reports every record after a failure on a FIFO queue, to keep the order', async () => {
  const fifo = { eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:orders.fifo' };
  const reply = await invoke({
    Records: [record('f1', { ok: true }, fifo), record('f2', { ok: false }, fifo), record('f3', { ok: true }, fifo)],
  });
  assert.equal(reply, { batchItemFailures: [{ itemIdentifier: 'f2' }, { itemIdentifier: 'f3' }] });
});

sqs('succeeds with an empty batchItemFailures when every record is handled', async () => {
  assert.equal(await invoke({ Records: [record('ok', { ok: true })] }), { batchItemFailures: [] });
});

runWithRic(direct, url, sqs);
