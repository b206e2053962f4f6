// The local Lambda API, driven by the real AWS SDK and its waiters, running built zips under the official RIC.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  PublishVersionCommand,
  UpdateAliasCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
  type InvocationType,
} from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects, withTimeout } from '../../helpers.js';
import {
  buildPackage,
  runWithRic,
  signedFetch,
  startEndpoint,
  type Package,
  type TestEndpoint,
} from '../../adapters/lambda/helpers.js';

const decoder = new TextDecoder();
const ROLE = 'arn:aws:iam::000000000000:role/test';

let api: TestEndpoint;
let fixture: Package;
let gated: Package;
let scratch: string;

const zipOf = (pkg: Package) => new Uint8Array(readFileSync(pkg.zip));
const waiter = () => ({ client: api.client, maxWaitTime: 30, minDelay: 0.05, maxDelay: 0.5 });
const send = <T>(promise: Promise<T>, what: string) => withTimeout(promise, 20_000, what);

async function create(name: string, pkg: Package, extra: { env?: Record<string, string>; wait?: boolean } = {}) {
  const out = await send(
    api.client.send(
      new CreateFunctionCommand({
        FunctionName: name,
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Role: ROLE,
        Code: { ZipFile: zipOf(pkg) },
        MemorySize: 256,
        Timeout: 5,
        Environment: { Variables: extra.env ?? {} },
      }),
    ),
    'CreateFunction',
  );
  if (extra.wait !== false)
    await send(waitUntilFunctionActiveV2(waiter(), { FunctionName: name }), 'the Active waiter');
  return out;
}

async function invoke(
  name: string,
  event: unknown,
  options: { qualifier?: string; type?: InvocationType; tail?: boolean } = {},
) {
  const out = await send(
    api.client.send(
      new InvokeCommand({
        FunctionName: name,
        Qualifier: options.qualifier,
        InvocationType: options.type,
        LogType: options.tail ? 'Tail' : undefined,
        Payload: new TextEncoder().encode(JSON.stringify(event)),
      }),
    ),
    'Invoke',
  );
  const text = decoder.decode(out.Payload ?? new Uint8Array());
  return { ...out, json: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

/** The AWS exception a call fails with. */
async function awsError(call: () => Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  const err = (await rejects(() => withTimeout(call(), 20_000, 'the call'))) as Error & {
    $metadata?: { httpStatusCode?: number };
  };
  return { name: err.name, message: err.message, status: err.$metadata?.httpStatusCode };
}

// ---
const endpoint = suite('LambdaEndpoint');
endpoint.before(async () => {
  [fixture, gated] = await Promise.all([
    buildPackage('test/fixtures/lambda/index.ts'),
    buildPackage('test/fixtures/lambda-gate/index.ts'),
  ]);
  api = await startEndpoint();
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-gate-'));
});
endpoint.after(async () => {
  await api?.close();
  fixture?.cleanup();
  gated?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

endpoint('creates a function Pending, Active for the V2 waiter, with the configuration the SDK reads', async () => {
  const created = await create('created', fixture, { env: { GREETING: 'hi' }, wait: false });
  assert.is(created.State, 'Pending');
  assert.is(created.FunctionArn, 'arn:aws:lambda:us-east-1:000000000000:function:created');
  assert.is(created.Version, '$LATEST');
  assert.is(created.CodeSha256, createHash('sha256').update(readFileSync(fixture.zip)).digest('base64'));
  assert.equal(
    [created.Runtime, created.Handler, created.MemorySize, created.Timeout],
    ['nodejs22.x', 'index.handler', 256, 5],
  );
  assert.equal(created.Environment?.Variables, { GREETING: 'hi' });
  await send(waitUntilFunctionActiveV2(waiter(), { FunctionName: 'created' }), 'the Active waiter');
  const { Configuration } = await send(
    api.client.send(new GetFunctionCommand({ FunctionName: 'created' })),
    'GetFunction',
  );
  assert.equal([Configuration?.State, Configuration?.LastUpdateStatus], ['Active', 'Successful']);
  const configuration = await send(
    api.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'created' })),
    'GetFunctionConfiguration',
  );
  assert.is(configuration.RevisionId, Configuration?.RevisionId);
});

endpoint('invokes: RequestResponse with the payload and the log tail, Event with 202, DryRun with 204', async () => {
  await create('invoked', fixture);
  const reply = await invoke('invoked', { endpoint: 'Fixture.Hello', body: { name: 'Ada' } }, { tail: true });
  assert.is(reply.StatusCode, 200);
  assert.is(reply.ExecutedVersion, '$LATEST');
  assert.is(reply.FunctionError, undefined);
  assert.is(reply.json?.body.message, 'Hello Ada');
  const log = Buffer.from(reply.LogResult ?? '', 'base64').toString();
  assert.match(log, /^START RequestId: [0-9a-f-]{36} Version: \$LATEST\n/);
  assert.match(
    log,
    /\nEND RequestId: [0-9a-f-]{36}\nREPORT RequestId: [0-9a-f-]{36}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 256 MB\n$/,
  );
  assert.is(
    (await invoke('invoked', { topic: 'orders.created', body: { ok: true } }, { type: 'Event' })).StatusCode,
    202,
  );
  assert.is((await invoke('invoked', {}, { type: 'DryRun' })).StatusCode, 204);
});

endpoint("reports a function's failure with X-Amz-Function-Error and the runtime's error payload", async () => {
  await create('failing', fixture);
  const out = await invoke('failing', { endpoint: 'Fixture.Exit' });
  assert.is(out.FunctionError, 'Unhandled');
  assert.is(out.json?.errorType, 'Runtime.ExitError');
  assert.is(
    (await invoke('failing', { endpoint: 'Fixture.Hello', body: { name: 'again' } })).json?.body.message,
    'Hello again',
  );
});

endpoint(
  "answers in AWS's error shapes: unknown function, name taken, bad zip, bad payload, unknown operation",
  async () => {
    assert.equal(await awsError(() => api.client.send(new GetFunctionCommand({ FunctionName: 'nobody' }))), {
      name: 'ResourceNotFoundException',
      message: 'Function not found: nobody',
      status: 404,
    });
    await create('taken', fixture);
    assert.equal(await awsError(() => create('taken', fixture)), {
      name: 'ResourceConflictException',
      message: 'Function already exist: taken',
      status: 409,
    });
    const badZip = await awsError(() =>
      api.client.send(
        new CreateFunctionCommand({
          FunctionName: 'bad',
          Runtime: 'nodejs22.x',
          Handler: 'index.handler',
          Role: ROLE,
          Code: { ZipFile: new Uint8Array([1, 2, 3]) },
        }),
      ),
    );
    assert.is(badZip.name, 'InvalidParameterValueException');
    assert.match(badZip.message, /^Could not unzip uploaded file/);
    const python = await awsError(() =>
      api.client.send(
        new CreateFunctionCommand({
          FunctionName: 'py',
          Runtime: 'python3.12',
          Handler: 'index.handler',
          Role: ROLE,
          Code: { ZipFile: zipOf(fixture) },
        }),
      ),
    );
    assert.match(python.message, /runs Node\.js functions only/);
    const payload = await awsError(() =>
      api.client.send(new InvokeCommand({ FunctionName: 'taken', Payload: new TextEncoder().encode('{not json') })),
    );
    assert.equal([payload.name, payload.status], ['InvalidRequestContentException', 400]);
    // GetPolicy: not part of the local API.
    const raw = await withTimeout(
      signedFetch(`${api.url}/2015-03-31/functions/taken/policy`),
      5000,
      'GET /2015-03-31/functions/taken/policy',
    );
    assert.is(raw.status, 404);
    assert.is(raw.headers.get('x-amzn-errortype'), 'UnknownOperationException');
    assert.equal(Object.keys((await raw.json()) as object), ['Type', 'message']);
  },
);

endpoint('publishes versions and moves aliases; an invoke through an alias runs its version', async () => {
  await create('versioned', fixture);
  const v1 = await send(api.client.send(new PublishVersionCommand({ FunctionName: 'versioned' })), 'PublishVersion');
  assert.equal([v1.Version, v1.FunctionArn], ['1', 'arn:aws:lambda:us-east-1:000000000000:function:versioned:1']);
  assert.is(
    (await send(api.client.send(new PublishVersionCommand({ FunctionName: 'versioned' })), 'PublishVersion')).Version,
    '1',
    'nothing changed: no new version',
  );
  const alias = await send(
    api.client.send(new CreateAliasCommand({ FunctionName: 'versioned', Name: 'live', FunctionVersion: '1' })),
    'CreateAlias',
  );
  assert.equal(
    [alias.AliasArn, alias.FunctionVersion],
    ['arn:aws:lambda:us-east-1:000000000000:function:versioned:live', '1'],
  );
  assert.is((await invoke('versioned:live', { endpoint: 'Fixture.Hello', body: { name: 'v1' } })).ExecutedVersion, '1');

  await send(
    api.client.send(
      new UpdateFunctionConfigurationCommand({
        FunctionName: 'versioned',
        Environment: { Variables: { GREETING: 'v2' } },
      }),
    ),
    'UpdateFunctionConfiguration',
  );
  await send(waitUntilFunctionUpdatedV2(waiter(), { FunctionName: 'versioned' }), 'the Updated waiter');
  const v2 = await send(api.client.send(new PublishVersionCommand({ FunctionName: 'versioned' })), 'PublishVersion');
  assert.is(v2.Version, '2');
  await send(
    api.client.send(new UpdateAliasCommand({ FunctionName: 'versioned', Name: 'live', FunctionVersion: '2' })),
    'UpdateAlias',
  );
  const env = await invoke(
    'versioned',
    { endpoint: 'Fixture.Env', body: { names: ['GREETING', 'AWS_LAMBDA_FUNCTION_VERSION'] } },
    { qualifier: 'live' },
  );
  assert.equal([env.ExecutedVersion, env.json?.body], ['2', { GREETING: 'v2', AWS_LAMBDA_FUNCTION_VERSION: '2' }]);

  assert.is(
    (
      await awsError(() =>
        api.client.send(new CreateAliasCommand({ FunctionName: 'versioned', Name: 'live', FunctionVersion: '1' })),
      )
    ).status,
    409,
  );
  assert.is(
    (
      await awsError(() =>
        api.client.send(new UpdateAliasCommand({ FunctionName: 'versioned', Name: 'nope', FunctionVersion: '1' })),
      )
    ).name,
    'ResourceNotFoundException',
  );
  assert.is(
    (
      await awsError(() =>
        api.client.send(new PublishVersionCommand({ FunctionName: 'versioned', CodeSha256: 'c29tZXRoaW5nIGVsc2U=' })),
      )
    ).name,
    'PreconditionFailedException',
  );
});

endpoint(
  'refuses Invoke while the function is created and updates while one is in progress (409); previous code serves meanwhile',
  async () => {
    const gate = join(scratch, 'open');
    await create('gated', gated, { env: { LAMBDA_GATE: gate }, wait: false });
    const pending = await awsError(() => invoke('gated', { endpoint: 'Gate.Greeting' }));
    assert.equal(
      [pending.name, pending.message],
      [
        'ResourceConflictException',
        'The operation cannot be performed at this time. The function is currently in the following state: Pending',
      ],
    );
    writeFileSync(gate, '');
    await send(waitUntilFunctionActiveV2(waiter(), { FunctionName: 'gated' }), 'the Active waiter');

    rmSync(gate);
    const updating = await send(
      api.client.send(new UpdateFunctionCodeCommand({ FunctionName: 'gated', ZipFile: zipOf(gated) })),
      'UpdateFunctionCode',
    );
    assert.is(updating.LastUpdateStatus, 'InProgress');
    const conflict = await awsError(() =>
      api.client.send(
        new UpdateFunctionConfigurationCommand({
          FunctionName: 'gated',
          Environment: { Variables: { LAMBDA_GATE: gate, GREETING: 'new' } },
        }),
      ),
    );
    assert.equal(conflict, {
      name: 'ResourceConflictException',
      message:
        'The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:000000000000:function:gated',
      status: 409,
    });
    assert.is(
      (await invoke('gated', { endpoint: 'Gate.Greeting' })).json?.body.greeting,
      null,
      'the previous environment serves',
    );
    assert.ok(!existsSync(gate));

    writeFileSync(gate, '');
    await send(waitUntilFunctionUpdatedV2(waiter(), { FunctionName: 'gated' }), 'the Updated waiter');
    await send(
      api.client.send(
        new UpdateFunctionConfigurationCommand({
          FunctionName: 'gated',
          Environment: { Variables: { LAMBDA_GATE: gate, GREETING: 'new' } },
        }),
      ),
      'UpdateFunctionConfiguration',
    );
    await send(waitUntilFunctionUpdatedV2(waiter(), { FunctionName: 'gated' }), 'the Updated waiter');
    assert.is((await invoke('gated', { endpoint: 'Gate.Greeting' })).json?.body.greeting, 'new');
  },
);

endpoint(
  "deletes one version no alias points at, or the whole function, and answers AWS's errors otherwise (4 refusals)",
  async () => {
    await create('deleted', fixture);
    const publish = async () =>
      (await send(api.client.send(new PublishVersionCommand({ FunctionName: 'deleted' })), 'PublishVersion')).Version;
    const change = async (greeting: string) => {
      await send(
        api.client.send(
          new UpdateFunctionConfigurationCommand({
            FunctionName: 'deleted',
            Environment: { Variables: { GREETING: greeting } },
          }),
        ),
        'UpdateFunctionConfiguration',
      );
      await send(waitUntilFunctionUpdatedV2(waiter(), { FunctionName: 'deleted' }), 'the Updated waiter');
    };
    assert.is(await publish(), '1');
    await change('two');
    assert.is(await publish(), '2');
    await send(
      api.client.send(new CreateAliasCommand({ FunctionName: 'deleted', Name: 'live', FunctionVersion: '2' })),
      'CreateAlias',
    );
    const remove = (Qualifier?: string) =>
      api.client.send(new DeleteFunctionCommand({ FunctionName: 'deleted', Qualifier }));
    assert.equal(await awsError(() => remove('$LATEST')), {
      name: 'InvalidParameterValueException',
      message: '$LATEST version cannot be deleted without deleting the function.',
      status: 400,
    });
    assert.equal(await awsError(() => remove('live')), {
      name: 'InvalidParameterValueException',
      message: 'Deletion of aliases is not currently supported.',
      status: 400,
    });
    assert.equal(await awsError(() => remove('2')), {
      name: 'ResourceConflictException',
      message: 'Unable to delete version because the following aliases reference it: [live]',
      status: 409,
    });
    assert.equal(await awsError(() => remove('7')), {
      name: 'ResourceNotFoundException',
      message: 'Function not found: arn:aws:lambda:us-east-1:000000000000:function:deleted:7',
      status: 404,
    });

    await send(remove('1'), 'DeleteFunction of version 1');
    assert.is(
      (
        await awsError(() =>
          api.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'deleted', Qualifier: '1' })),
        )
      ).status,
      404,
    );
    assert.is((await invoke('deleted:live', { endpoint: 'Fixture.Hello', body: { name: 'v2' } })).ExecutedVersion, '2');
    await change('three');
    assert.is(await publish(), '3', 'a deleted number is not used again');

    await send(remove(), 'DeleteFunction');
    for (const call of [
      () => api.client.send(new GetFunctionCommand({ FunctionName: 'deleted' })),
      () => invoke('deleted:live', { endpoint: 'Fixture.Hello', body: { name: 'gone' } }),
      () => remove(),
    ])
      assert.equal((await awsError(call)).status, 404);
    assert.is(
      (await awsError(() => remove())).message,
      'Function not found: arn:aws:lambda:us-east-1:000000000000:function:deleted',
    );
    await create('deleted', fixture);
    const again = await invoke('deleted', { endpoint: 'Fixture.Hello', body: { name: 'again' } });
    assert.equal([again.ExecutedVersion, again.json?.body.message], ['$LATEST', 'Hello again']);
    assert.is(await publish(), '1', 'a function created again starts its versions again, as on Lambda');
  },
);

runWithRic(endpoint);
