// The local Lambda API's functions outlive the API: recorded as they change (serve/state.ts, record.ts), put back by
// the next one from the same folder, versions, aliases and settings intact; a record that fails its checks is left out.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateAliasCommand,
  CreateFunctionCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  LambdaClient,
  PublishVersionCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
} from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LambdaEndpoint } from '../../../serve/lambda/endpoint.js';
import { parseFunctionRecord, type FunctionRecord } from '../../../serve/lambda/record.js';
import { RecordStore } from '../../../serve/state.js';
import { withTimeout } from '../../helpers.js';
import { buildPackage, credentials, runWithRic, type Package } from '../../adapters/lambda/helpers.js';

interface Api {
  endpoint: LambdaEndpoint;
  client: LambdaClient;
  close(): Promise<void>;
}

let scratch: string;
let fixture: Package;
let said: string[];
const running: Api[] = [];

const records = () => join(scratch, 'records');
const store = () =>
  new RecordStore<FunctionRecord>(records(), { parse: parseFunctionRecord, say: (line) => said.push(line) });

/** A Lambda API on the folders of `scratch`, restoring what they hold, as serve's extension does at its start. */
async function open(): Promise<Api> {
  const recorded = store();
  const endpoint = new LambdaEndpoint({
    dir: join(scratch, 'code'),
    store: recorded,
    say: (line) => said.push(line),
    keys: [{ ...credentials, invokeOnly: false }],
  });
  await endpoint.functions.restore(await recorded.readAll());
  const server: Server = createServer((req, res) => endpoint.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new LambdaClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 1 });
  const api: Api = {
    endpoint,
    client,
    async close() {
      client.destroy();
      await endpoint.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  running.push(api);
  return api;
}

const send = <T>(promise: Promise<T>, what: string) => withTimeout(promise, 20_000, what);
const waiter = (api: Api) => ({ client: api.client, maxWaitTime: 30, minDelay: 0.05, maxDelay: 0.5 });

async function env(api: Api, qualifier: string) {
  const out = await send(
    api.client.send(
      new InvokeCommand({
        FunctionName: 'kept',
        Qualifier: qualifier,
        Payload: new TextEncoder().encode(JSON.stringify({ endpoint: 'Fixture.Env', body: { names: ['GREETING'] } })),
      }),
    ),
    'Invoke',
  );
  const payload = JSON.parse(new TextDecoder().decode(out.Payload)) as { body: { GREETING: string } };
  return [out.ExecutedVersion, payload.body.GREETING];
}

// ---
const restore = suite('Functions.restore');
restore.before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-restore-'));
  fixture = await buildPackage('test/fixtures/lambda/index.ts');
  said = [];
});
restore.after(async () => {
  await Promise.allSettled(running.map((api) => api.close()));
  fixture?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

restore('puts back a function with its settings, 2 versions and 2 aliases, each running its own version', async () => {
  const first = await open();
  const configure = async (greeting: string) => {
    await send(
      first.client.send(
        new UpdateFunctionConfigurationCommand({
          FunctionName: 'kept',
          Environment: { Variables: { GREETING: greeting } },
        }),
      ),
      'UpdateFunctionConfiguration',
    );
    await send(waitUntilFunctionUpdatedV2(waiter(first), { FunctionName: 'kept' }), 'the Updated waiter');
    return (await send(first.client.send(new PublishVersionCommand({ FunctionName: 'kept' })), 'PublishVersion'))
      .Version;
  };
  await send(
    first.client.send(
      new CreateFunctionCommand({
        FunctionName: 'kept',
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Role: 'arn:aws:iam::000000000000:role/test',
        Code: { ZipFile: new Uint8Array(readFileSync(fixture.zip)) },
        MemorySize: 256,
        Timeout: 7,
      }),
    ),
    'CreateFunction',
  );
  await send(waitUntilFunctionActiveV2(waiter(first), { FunctionName: 'kept' }), 'the Active waiter');
  assert.equal([await configure('one'), await configure('two')], ['1', '2']);
  for (const [Name, FunctionVersion] of [
    ['live', '1'],
    ['next', '2'],
  ] as const)
    await send(first.client.send(new CreateAliasCommand({ FunctionName: 'kept', Name, FunctionVersion })), Name);
  const entry = {
    name: 'kept',
    version: 'latest',
    metadata: {},
    endpoints: [],
    nodes: [{ id: 'kept-lambda', address: 'lambda://us-east-1/kept:live', metadata: {} }],
  };
  await first.endpoint.functions.setEntries('kept', [entry]);
  await first.close();

  const second = await open();
  assert.equal(said, [], said.join('\n'));
  const latest = await send(
    second.client.send(new GetFunctionConfigurationCommand({ FunctionName: 'kept' })),
    'GetFunctionConfiguration',
  );
  assert.equal(
    [latest.State, latest.MemorySize, latest.Timeout, latest.Environment?.Variables],
    ['Active', 256, 7, { GREETING: 'two' }],
  );
  assert.equal(await env(second, 'live'), ['1', 'one']);
  assert.equal(await env(second, 'next'), ['2', 'two']);
  assert.equal(await env(second, '1'), ['1', 'one']);
  assert.equal(second.endpoint.functions.entries('kept'), [entry], 'its registry entries, for serve to put back');
  await send(
    second.client.send(
      new UpdateFunctionConfigurationCommand({ FunctionName: 'kept', Environment: { Variables: { GREETING: 'x' } } }),
    ),
    'UpdateFunctionConfiguration',
  );
  await send(waitUntilFunctionUpdatedV2(waiter(second), { FunctionName: 'kept' }), 'the Updated waiter');
  assert.is(
    (await send(second.client.send(new PublishVersionCommand({ FunctionName: 'kept' })), 'PublishVersion')).Version,
    '3',
    'numbering goes on',
  );
  await second.close();
});

restore(
  'leaves out a record a create would refuse (kept) and one whose code is gone (removed), saying why (2 of 3)',
  async () => {
    const file = join(records(), 'kept.json');
    const good = JSON.parse(readFileSync(file, 'utf8')) as { key: string; value: FunctionRecord };
    const refused = structuredClone(good);
    refused.key = 'refused';
    refused.value.latest.config.FunctionName = 'refused';
    refused.value.latest.config.FunctionArn = 'arn:aws:lambda:us-east-1:000000000000:function:refused';
    refused.value.latest.config.Environment = { Variables: { NODE_OPTIONS: '--require /tmp/evil.js' } };
    refused.value.versions = [];
    refused.value.aliases = [];
    writeFileSync(join(records(), 'refused.json'), JSON.stringify(refused), { mode: 0o600 });
    const moved = structuredClone(refused);
    moved.key = 'moved';
    Object.assign(moved.value.latest, { code: '0'.repeat(32) });
    Object.assign(moved.value.latest.config, {
      FunctionName: 'moved',
      FunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:moved',
      Environment: { Variables: {} },
    });
    writeFileSync(join(records(), 'moved.json'), JSON.stringify(moved), { mode: 0o600 });
    said = [];
    const api = await open();
    assert.equal(api.endpoint.functions.names(), ['kept']);
    assert.is(said.length, 2, said.join('\n'));
    assert.match(
      said.join('\n'),
      /left out the Lambda function refused: version \$LATEST: .*NODE_OPTIONS.*; its record is kept/,
    );
    assert.match(
      said.join('\n'),
      /left out the Lambda function moved: the code of version \$LATEST is gone from .*; its record is removed/,
    );
    assert.equal(readdirSync(records()).sort(), ['kept.json', 'refused.json']);
    await api.close();
  },
);

runWithRic(restore);
