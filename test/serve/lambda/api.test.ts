/**
 * The rest of the local Lambda API, as the official AWS SDK sees it on a real `micro-fn serve`: ListFunctions (paging,
 * FunctionVersion=ALL), ListVersionsByFunction, GetAlias, ListAliases, DeleteFunction with a Qualifier, Publish on
 * CreateFunction and UpdateFunctionCode, Architectures kept as given; and all of it again after serve is killed and
 * started at the same address.
 */
import { readFileSync } from 'node:fs';
import {
  CreateAliasCommand,
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetAliasCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  InvokeWithResponseStreamCommand,
  LambdaClient,
  ListAliasesCommand,
  ListFunctionsCommand,
  ListVersionsByFunctionCommand,
  UpdateAliasCommand,
  UpdateFunctionCodeCommand,
  paginateListFunctions,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
  type Architecture,
  type FunctionVersion,
} from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readCredential } from '../../../runtime/plugins/local/credential.js';
import { freePort, rejects, withTimeout } from '../../helpers.js';
import { buildPackage, runWithRic, type Package } from '../../adapters/lambda/helpers.js';
import { start, tempHome, type Running } from '../../cli/helpers.js';

const ROLE = 'arn:aws:iam::000000000000:role/test';

let scratch: ReturnType<typeof tempHome>;
let serve: Running | undefined;
let address: string;
let client: LambdaClient;
let one: Package;
let two: Package;

const send = <T>(promise: Promise<T>, what: string) => withTimeout(promise, 30_000, what);
const zip = (pkg: Package) => new Uint8Array(readFileSync(pkg.zip));
const waiter = () => ({ client, maxWaitTime: 30, minDelay: 0.05, maxDelay: 0.5 });

async function startServe(): Promise<void> {
  serve = start(['serve', '--address', address], { MICRO_FN_HOME: scratch.home, NODE_NO_WARNINGS: '1' });
  await serve.waitFor(/micro-fn serve listening on http:\/\/127\.0\.0\.1:\d+\n/, 60_000);
  client?.destroy();
  const { aws } = readCredential(scratch.home)!;
  client = new LambdaClient({ endpoint: `http://${address}`, region: 'us-east-1', credentials: aws, maxAttempts: 1 });
}

async function stopServe(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  if (!serve) return;
  serve.child.kill(signal);
  await serve.exited(30_000).catch(() => serve?.kill());
  serve = undefined;
}

async function create(name: string, extra: { publish?: boolean; architectures?: string[]; wait?: boolean } = {}) {
  const out = await send(
    client.send(
      new CreateFunctionCommand({
        FunctionName: name,
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Role: ROLE,
        Code: { ZipFile: zip(one) },
        Publish: extra.publish,
        Architectures: extra.architectures as Architecture[] | undefined,
      }),
    ),
    `CreateFunction ${name}`,
  );
  if (extra.wait !== false) await send(waitUntilFunctionActiveV2(waiter(), { FunctionName: name }), 'Active');
  return out;
}

/** The AWS exception a call fails with. */
async function awsError(call: () => Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  const err = (await rejects(() => withTimeout(call(), 30_000, 'the call'))) as Error & {
    $metadata?: { httpStatusCode?: number };
  };
  return { name: err.name, message: err.message, status: err.$metadata?.httpStatusCode };
}

async function invokedVersion(name: string, qualifier: string): Promise<string | undefined> {
  const out = await send(
    client.send(
      new InvokeCommand({
        FunctionName: name,
        Qualifier: qualifier,
        Payload: new TextEncoder().encode(JSON.stringify({ endpoint: 'Fixture.Hello', body: { name: 'Ada' } })),
      }),
    ),
    `Invoke ${name}:${qualifier}`,
  );
  return out.ExecutedVersion;
}

// ---
const api = suite('the local Lambda API on a real serve, with the AWS SDK');

api.before(async () => {
  [one, two] = await Promise.all([
    buildPackage('test/fixtures/lambda/index.ts'),
    buildPackage('test/fixtures/lambda-gate/index.ts'),
  ]);
  scratch = tempHome();
  address = `127.0.0.1:${await freePort()}`;
  await startServe();
});

api.after(async () => {
  client?.destroy();
  await stopServe('SIGTERM');
  scratch?.cleanup();
  one?.cleanup();
  two?.cleanup();
});

api('CreateFunction with Publish returns version 1, Pending, and both become Active', async () => {
  const created = await create('published', { publish: true, wait: false });
  assert.equal(
    [created.Version, created.FunctionArn],
    ['1', 'arn:aws:lambda:us-east-1:000000000000:function:published:1'],
  );
  assert.is(created.State, 'Pending');
  await send(waitUntilFunctionActiveV2(waiter(), { FunctionName: 'published', Qualifier: '1' }), 'version 1 Active');
  await send(waitUntilFunctionActiveV2(waiter(), { FunctionName: 'published' }), '$LATEST Active');
  assert.is(await invokedVersion('published', '1'), '1');
});

api('UpdateFunctionCode with Publish returns the new version, which runs the new code once updated', async () => {
  const updated = await send(
    client.send(new UpdateFunctionCodeCommand({ FunctionName: 'published', ZipFile: zip(two), Publish: true })),
    'UpdateFunctionCode',
  );
  assert.is(updated.Version, '2');
  assert.is(updated.LastUpdateStatus, 'InProgress');
  assert.is(updated.CodeSha256, (await config('published', '$LATEST')).CodeSha256);
  await send(waitUntilFunctionUpdatedV2(waiter(), { FunctionName: 'published', Qualifier: '2' }), 'version 2 updated');
  assert.is((await config('published', '2')).LastUpdateStatus, 'Successful');
  assert.is(await invokedVersion('published', '2'), '2');
  assert.is.not((await config('published', '1')).CodeSha256, (await config('published', '2')).CodeSha256);
});

async function config(name: string, qualifier: string) {
  return send(
    client.send(new GetFunctionConfigurationCommand({ FunctionName: name, Qualifier: qualifier })),
    'GetFunctionConfiguration',
  );
}

api('Architectures: arm64 is kept as given, absent is x86_64, anything else is a ValidationException', async () => {
  assert.equal((await create('arm', { architectures: ['arm64'], wait: false })).Architectures, ['arm64']);
  assert.equal((await config('arm', '$LATEST')).Architectures, ['arm64']);
  assert.equal((await config('published', '$LATEST')).Architectures, ['x86_64']);
  const wrong = await awsError(() => create('wrong', { architectures: ['riscv'] }));
  assert.equal([wrong.name, wrong.status], ['ValidationException', 400]);
  assert.match(wrong.message, "Value '[riscv]' at 'architectures' failed to satisfy constraint");
  const pair = await awsError(() => create('wrong', { architectures: ['x86_64', 'arm64'] }));
  assert.equal([pair.name, pair.status], ['ValidationException', 400]);
  await send(waitUntilFunctionActiveV2(waiter(), { FunctionName: 'arm' }), 'arm Active');
  for (const architecture of ['x86_64', 'arm64'] as const) {
    const moved = await send(
      client.send(
        new UpdateFunctionCodeCommand({
          FunctionName: 'arm',
          ZipFile: zip(architecture === 'x86_64' ? two : one),
          Architectures: [architecture],
        }),
      ),
      `UpdateFunctionCode arm ${architecture}`,
    );
    assert.equal(moved.Architectures, [architecture], 'UpdateFunctionCode changes it');
    await send(waitUntilFunctionUpdatedV2(waiter(), { FunctionName: 'arm' }), 'arm updated');
  }
});

api('ListFunctions pages by MaxItems and Marker (5 functions, pages of 2: 2 + 2 + 1), in name order', async () => {
  await Promise.all(['list-a', 'list-b', 'list-c'].map((name) => create(name, { wait: false })));
  const names: string[] = [];
  const pages: number[] = [];
  let marker: string | undefined;
  do {
    const page = await send(client.send(new ListFunctionsCommand({ MaxItems: 2, Marker: marker })), 'ListFunctions');
    pages.push(page.Functions!.length);
    names.push(...page.Functions!.map((f) => f.FunctionName!));
    marker = page.NextMarker;
  } while (marker);
  assert.equal(names, ['arm', 'list-a', 'list-b', 'list-c', 'published']);
  assert.equal(pages, [2, 2, 1]);
  const all: string[] = [];
  for await (const page of paginateListFunctions({ client, pageSize: 3 }, {}))
    all.push(...page.Functions!.map((f) => f.FunctionName!));
  assert.equal(all, names, "the SDK's own paginator");
});

api('ListFunctions with FunctionVersion=ALL lists $LATEST and every version; another value is refused', async () => {
  const { Functions } = await send(
    client.send(new ListFunctionsCommand({ FunctionVersion: 'ALL' })),
    'ListFunctions ALL',
  );
  const published = Functions!.filter((f) => f.FunctionName === 'published').map((f) => f.Version);
  assert.equal(published, ['$LATEST', '1', '2']);
  assert.is(Functions!.length, 7);
  const wrong = await awsError(() =>
    client.send(new ListFunctionsCommand({ FunctionVersion: 'SOME' as FunctionVersion })),
  );
  assert.equal([wrong.name, wrong.status], ['ValidationException', 400]);
  const zero = await awsError(() => client.send(new ListFunctionsCommand({ MaxItems: 0 })));
  assert.equal([zero.name, zero.status], ['ValidationException', 400]);
  const marker = await awsError(() => client.send(new ListFunctionsCommand({ Marker: '!!' })));
  assert.equal([marker.name, marker.status], ['InvalidParameterValueException', 400]);
});

api('ListVersionsByFunction lists $LATEST, 1, 2 and pages; an unknown function is ResourceNotFound', async () => {
  const { Versions } = await send(
    client.send(new ListVersionsByFunctionCommand({ FunctionName: 'published' })),
    'ListVersionsByFunction',
  );
  assert.equal(
    Versions!.map((v) => v.Version),
    ['$LATEST', '1', '2'],
  );
  const first = await send(
    client.send(new ListVersionsByFunctionCommand({ FunctionName: 'published', MaxItems: 2 })),
    'ListVersionsByFunction page 1',
  );
  const rest = await send(
    client.send(
      new ListVersionsByFunctionCommand({ FunctionName: 'published', MaxItems: 2, Marker: first.NextMarker }),
    ),
    'ListVersionsByFunction page 2',
  );
  assert.equal(
    [first.Versions!.map((v) => v.Version), rest.Versions!.map((v) => v.Version)],
    [['$LATEST', '1'], ['2']],
  );
  assert.is(rest.NextMarker, undefined);
  const missing = await awsError(() => client.send(new ListVersionsByFunctionCommand({ FunctionName: 'nothing' })));
  assert.equal([missing.name, missing.status], ['ResourceNotFoundException', 404]);
});

api('GetAlias and ListAliases (filtered by FunctionVersion); an unknown alias is ResourceNotFound', async () => {
  for (const [name, version] of [
    ['live', '2'],
    ['prev', '1'],
    ['edge', '$LATEST'],
  ] as const)
    await send(
      client.send(new CreateAliasCommand({ FunctionName: 'published', Name: name, FunctionVersion: version })),
      `CreateAlias ${name}`,
    );
  const live = await send(client.send(new GetAliasCommand({ FunctionName: 'published', Name: 'live' })), 'GetAlias');
  assert.equal(
    [live.Name, live.FunctionVersion, live.AliasArn],
    ['live', '2', 'arn:aws:lambda:us-east-1:000000000000:function:published:live'],
  );
  const { Aliases } = await send(client.send(new ListAliasesCommand({ FunctionName: 'published' })), 'ListAliases');
  assert.equal(
    Aliases!.map((a) => a.Name),
    ['edge', 'live', 'prev'],
  );
  const onOne = await send(
    client.send(new ListAliasesCommand({ FunctionName: 'published', FunctionVersion: '1' })),
    'ListAliases 1',
  );
  assert.equal(
    onOne.Aliases!.map((a) => a.Name),
    ['prev'],
  );
  const missing = await awsError(() => client.send(new GetAliasCommand({ FunctionName: 'published', Name: 'gone' })));
  assert.equal([missing.name, missing.status], ['ResourceNotFoundException', 404]);
  assert.match(missing.message, 'function:published:gone');
});

api('InvokeWithResponseStream reaches serve (its own /2021-11-15/ path), also with the invoke-only key', async () => {
  await create('streamed');
  const { awsInvoke } = readCredential(scratch.home)!;
  const invoker = new LambdaClient({
    endpoint: `http://${address}`,
    region: 'us-east-1',
    credentials: awsInvoke,
    maxAttempts: 1,
  });
  try {
    for (const c of [client, invoker]) {
      const out = await send(
        c.send(
          new InvokeWithResponseStreamCommand({
            FunctionName: 'streamed',
            Payload: new TextEncoder().encode(JSON.stringify({ endpoint: 'Fixture.Hello', body: { name: 'Ada' } })),
          }),
        ),
        'InvokeWithResponseStream',
      );
      const chunks: Uint8Array[] = [];
      let complete: object | undefined;
      for await (const e of out.EventStream!) {
        if (e.PayloadChunk?.Payload) chunks.push(e.PayloadChunk.Payload);
        if (e.InvokeComplete) complete = e.InvokeComplete;
      }
      assert.is(out.ExecutedVersion, '$LATEST');
      assert.is(JSON.parse(Buffer.concat(chunks).toString()).body.message, 'Hello Ada');
      assert.equal(complete, {});
    }
    const refused = await awsError(() =>
      invoker.send(new InvokeWithResponseStreamCommand({ FunctionName: 'streamed', InvocationType: 'Event' as never })),
    );
    assert.is(refused.name, 'InvalidParameterValueException');
    const unknown = await awsError(() => invoker.send(new InvokeWithResponseStreamCommand({ FunctionName: 'nope' })));
    assert.is(unknown.status, 404);
  } finally {
    invoker.destroy();
    await send(client.send(new DeleteFunctionCommand({ FunctionName: 'streamed' })), 'DeleteFunction'); // the lists below
  }
});

api('versions, aliases and architectures survive a SIGKILL of serve (3 versions, 3 aliases, arm64)', async () => {
  await stopServe('SIGKILL');
  await startServe();
  const { Versions } = await send(
    client.send(new ListVersionsByFunctionCommand({ FunctionName: 'published' })),
    'ListVersionsByFunction after restart',
  );
  assert.equal(
    Versions!.map((v) => v.Version),
    ['$LATEST', '1', '2'],
  );
  const { Aliases } = await send(client.send(new ListAliasesCommand({ FunctionName: 'published' })), 'ListAliases');
  assert.equal(
    Aliases!.map((a) => `${a.Name}=${a.FunctionVersion}`),
    ['edge=$LATEST', 'live=2', 'prev=1'],
  );
  assert.is(
    (await send(client.send(new GetAliasCommand({ FunctionName: 'published', Name: 'live' })), 'GetAlias'))
      .FunctionVersion,
    '2',
  );
  assert.equal((await config('arm', '$LATEST')).Architectures, ['arm64']);
  assert.is(await invokedVersion('published', 'live'), '2');
});

api(
  'DeleteFunction with a Qualifier: $LATEST, an alias, a referenced version, a missing one are refused; a free one goes',
  async () => {
    const latest = await awsError(() =>
      client.send(new DeleteFunctionCommand({ FunctionName: 'published', Qualifier: '$LATEST' })),
    );
    assert.equal([latest.name, latest.status], ['InvalidParameterValueException', 400]);
    const alias = await awsError(() =>
      client.send(new DeleteFunctionCommand({ FunctionName: 'published', Qualifier: 'live' })),
    );
    assert.equal([alias.name, alias.status], ['InvalidParameterValueException', 400]);
    const used = await awsError(() =>
      client.send(new DeleteFunctionCommand({ FunctionName: 'published', Qualifier: '1' })),
    );
    assert.equal([used.name, used.status], ['ResourceConflictException', 409]);
    const missing = await awsError(() =>
      client.send(new DeleteFunctionCommand({ FunctionName: 'published', Qualifier: '9' })),
    );
    assert.equal([missing.name, missing.status], ['ResourceNotFoundException', 404]);
    const mismatch = await awsError(() =>
      client.send(new DeleteFunctionCommand({ FunctionName: 'published:1', Qualifier: '2' })),
    );
    assert.equal([mismatch.name, mismatch.status], ['InvalidParameterValueException', 400]);
    // Version 1 is free once prev moves off it.
    await send(
      client.send(new UpdateAliasCommand({ FunctionName: 'published', Name: 'prev', FunctionVersion: '2' })),
      'UpdateAlias prev',
    );
    await send(
      client.send(new DeleteFunctionCommand({ FunctionName: 'published', Qualifier: '1' })),
      'delete version 1',
    );
    const { Versions } = await send(
      client.send(new ListVersionsByFunctionCommand({ FunctionName: 'published' })),
      'versions',
    );
    assert.equal(
      Versions!.map((v) => v.Version),
      ['$LATEST', '2'],
    );
    await send(client.send(new DeleteFunctionCommand({ FunctionName: 'list-b' })), 'DeleteFunction list-b');
    const { Functions } = await send(client.send(new ListFunctionsCommand({})), 'ListFunctions');
    assert.equal(
      Functions!.map((f) => f.FunctionName),
      ['arm', 'list-a', 'list-c', 'published'],
    );
    const gone = await awsError(() => client.send(new DeleteFunctionCommand({ FunctionName: 'list-b' })));
    assert.equal([gone.name, gone.status], ['ResourceNotFoundException', 404]);
  },
);

runWithRic(api);
