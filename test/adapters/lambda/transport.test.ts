// The Lambda transport (runtime/plugins/lambda) calling functions on the local Lambda API through the AWS SDK.
import { readFileSync } from 'node:fs';
import {
  CreateAliasCommand,
  CreateFunctionCommand,
  PublishVersionCommand,
  waitUntilFunctionActiveV2,
} from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, Metadata, isMicroError, type MicroError, type NodeRecord } from '../../../runtime/core/index.js';
import {
  LAMBDA_ENDPOINT_METADATA,
  formatLambdaAddress,
  parseLambdaAddress,
} from '../../../runtime/plugins/lambda/address.js';
import { createLambdaTransport, type LambdaTransport } from '../../../runtime/plugins/lambda/transport.js';
import { createMemoryRegistry } from '../../../runtime/plugins/memory/registry.js';
import { resolvePlugins } from '../../../runtime/plugins/resolve.js';
import { rejects, withTimeout } from '../../helpers.js';
import { buildPackage, runWithRic, startEndpoint, type Package, type TestEndpoint } from './helpers.js';

let api: TestEndpoint;
let pkg: Package;
let transport: LambdaTransport;
let client: Client;

const node = (
  address = 'lambda://us-east-1/lambda-fixture:live',
  endpoint: string | undefined = api.url,
): NodeRecord => ({
  id: 'n1',
  address,
  metadata: endpoint ? { [LAMBDA_ENDPOINT_METADATA]: endpoint } : {},
});

async function failure(call: () => Promise<unknown>): Promise<MicroError> {
  const err = await rejects(() => withTimeout(call(), 20_000, 'the call'));
  assert.ok(isMicroError(err), `a MicroError: ${String(err)}`);
  return err as MicroError;
}

// ---
const address = suite('parseLambdaAddress');

address('reads region, function and qualifier, and formats them back', () => {
  assert.equal(parseLambdaAddress('lambda://eu-west-1/hello:live'), {
    region: 'eu-west-1',
    name: 'hello',
    qualifier: 'live',
  });
  assert.equal(parseLambdaAddress('lambda://us-east-1/hello'), { region: 'us-east-1', name: 'hello' });
  assert.is(formatLambdaAddress({ region: 'us-east-1', name: 'hello', qualifier: '3' }), 'lambda://us-east-1/hello:3');
  for (const bad of ['http://x/y', 'lambda://us-east-1', 'lambda://us-east-1/a.b', 'lambda:///hello'])
    assert.is(parseLambdaAddress(bad), undefined, bad);
});

address.run();

// ---
const lambda = suite('LambdaTransport');
lambda.before(async () => {
  pkg = await buildPackage('test/fixtures/lambda/index.ts');
  api = await startEndpoint();
  const name = 'lambda-fixture';
  await api.client.send(
    new CreateFunctionCommand({
      FunctionName: name,
      Runtime: 'nodejs22.x',
      Handler: 'index.handler',
      Role: 'arn:aws:iam::000000000000:role/test',
      Timeout: 1,
      Code: { ZipFile: readFileSync(pkg.zip) },
    }),
  );
  await withTimeout(
    waitUntilFunctionActiveV2(
      { client: api.client, maxWaitTime: 30, minDelay: 0.05, maxDelay: 0.5 },
      { FunctionName: name },
    ),
    30_000,
    'Active',
  );
  await api.client.send(new PublishVersionCommand({ FunctionName: name }));
  await api.client.send(new CreateAliasCommand({ FunctionName: name, Name: 'live', FunctionVersion: '1' }));
  transport = createLambdaTransport({ env: {} });
  const registry = createMemoryRegistry();
  await registry.register({ name, version: 'latest', metadata: {}, endpoints: [], nodes: [node()] });
  client = new Client({ registry, transports: [transport], retries: 0 });
});
lambda.after(async () => {
  await transport?.close();
  await api?.close();
  pkg?.cleanup();
});

lambda('calls a function found in the registry: the reply, and metadata both ways', async () => {
  const reply = await withTimeout(
    client.request<{ message: string; tenant: string }>(
      'lambda-fixture',
      'Fixture.Hello',
      { name: 'Ada' },
      { metadata: { 'x-tenant': 'acme' } },
    ),
    20_000,
    'call',
  );
  assert.is(reply.body.message, 'Hello Ada');
  assert.is(reply.body.tenant, 'acme');
  assert.is(reply.metadata.get('x-greeting'), 'hi');
});

lambda("gives a handler's error back as error JSON with its status", async () => {
  const bad = await failure(() => client.call('lambda-fixture', 'Fixture.Hello', {}));
  assert.equal(bad.toJSON(), { id: 'lambda-fixture', code: 400, detail: 'name is required', status: 'Bad Request' });
  const boom = await failure(() => client.call('lambda-fixture', 'Fixture.Boom', {}));
  assert.equal([boom.code, boom.detail], [500, 'internal server error']);
});

lambda(
  "turns Lambda's own failures into errors: a timeout 408, an unknown function 404, an unreachable API 503",
  async () => {
    const timedOut = await failure(() =>
      client.call('lambda-fixture', 'Fixture.Sleep', { ms: 3000 }, { timeout: 10_000 }),
    );
    assert.equal([timedOut.code, timedOut.retryable], [408, false]);
    // The handler's deadline is Lambda's less a reserve (adapters/lambda/deadline.ts): the function answers 408 itself
    // before Lambda's own "Task timed out", which the transport turns into the same 408.
    assert.match(
      timedOut.detail,
      /Fixture\.Sleep did not finish before its deadline|Task timed out after 1\.00 seconds/,
    );
    const request = {
      id: 'r1',
      service: 'nobody',
      endpoint: 'X.Y',
      contentType: 'application/json',
      body: new TextEncoder().encode('{}'),
      metadata: new Metadata(),
    };
    const missing = await failure(() => transport.call(node('lambda://us-east-1/nobody:live'), request));
    assert.equal([missing.code, missing.retryable], [404, false]);
    assert.match(
      missing.detail,
      /^Lambda function nobody:live \(us-east-1 at http:\/\/127\.0\.0\.1:\d+\): Function not found: nobody; deploy it with micro-fn deploy --target lambda$/,
    );
    const unreachable = await failure(() => transport.call(node(undefined, 'http://127.0.0.1:1'), request));
    assert.equal([unreachable.code, unreachable.retryable], [503, true]);
  },
);

lambda('stops waiting at the deadline with a 408 that is not retried', async () => {
  const late = await failure(() => client.call('lambda-fixture', 'Fixture.Sleep', { ms: 900 }, { timeout: 150 }));
  assert.equal([late.code, late.retryable], [408, false]);
});

lambda("delivers a broker message as a direct {topic} invocation and reports the subscriber's outcome", async () => {
  const message = (ok: boolean) => ({
    id: `m-${ok}`,
    topic: 'orders.created',
    headers: { 'content-type': 'application/json' },
    body: new TextEncoder().encode(JSON.stringify({ ok })),
  });
  assert.equal(await withTimeout(transport.deliver(node(), message(true)), 20_000, 'deliver'), { ok: true });
  const failed = await withTimeout(transport.deliver(node(), message(false)), 20_000, 'deliver');
  assert.is(failed.ok, false);
  assert.equal(failed.error?.toJSON(), {
    id: 'lambda-fixture',
    code: 400,
    detail: 'order m-false is not ok',
    status: 'Bad Request',
  });
});

lambda('uses AWS_ENDPOINT_URL_LAMBDA for a node that names no endpoint', async () => {
  const viaEnv = createLambdaTransport({ env: { AWS_ENDPOINT_URL_LAMBDA: api.url } });
  try {
    const request = {
      id: 'r2',
      service: 'lambda-fixture',
      endpoint: 'Fixture.Hello',
      contentType: 'application/json',
      body: new TextEncoder().encode('{"name":"Env"}'),
      metadata: new Metadata(),
    };
    const response = await withTimeout(viaEnv.call(node(undefined, ''), request), 20_000, 'call');
    assert.is(response.error, undefined);
    assert.is((JSON.parse(new TextDecoder().decode(response.body)) as { message: string }).message, 'Hello Env');
  } finally {
    await viaEnv.close();
  }
});

lambda('is among the transports resolvePlugins gives every host', async () => {
  const plugins = await resolvePlugins({ MICRO_REGISTRY: 'memory', MICRO_BROKER: 'memory' });
  try {
    await plugins.registry.register({
      name: 'lambda-fixture',
      version: 'latest',
      metadata: {},
      endpoints: [],
      nodes: [node()],
    });
    const viaPlugins = new Client({ registry: plugins.registry, transports: plugins.transports });
    assert.is(
      (
        await withTimeout(
          viaPlugins.call<{ message: string }>('lambda-fixture', 'Fixture.Hello', { name: 'Plugins' }),
          20_000,
          'call',
        )
      ).message,
      'Hello Plugins',
    );
  } finally {
    await plugins.close();
  }
});

runWithRic(lambda);
