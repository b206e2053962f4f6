// deployLambda through the real AWS SDK against the local Lambda API: create, update, a deploy racing another, dry run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetFunctionCommand, InvokeCommand } from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { deployLambda, type LambdaDeployOptions } from '../../../adapters/lambda/deploy.js';
import { createFileRegistry } from '../../../runtime/plugins/local/index.js';
import { eventually, rejects, withTimeout } from '../../helpers.js';
import { root, runWithRic, startEndpoint, type TestEndpoint } from './helpers.js';

let api: TestEndpoint;
let scratch: string;

function deploy(entry: string, options: Partial<LambdaDeployOptions> & { lines?: string[] } = {}) {
  const lines = options.lines ?? [];
  return withTimeout(
    deployLambda({
      entry: join(root, entry),
      outdir: join(scratch, 'out', entry),
      endpoint: api.url,
      hostEnv: { MICRO_FN_HOME: scratch },
      onProgress: (line) => lines.push(line),
      ...options,
    }),
    60_000,
    `deploying ${entry}`,
  );
}

async function lastUpdateStatus(name: string): Promise<string | undefined> {
  return (await api.client.send(new GetFunctionCommand({ FunctionName: name }))).Configuration?.LastUpdateStatus;
}

async function invokeAlias(name: string, event: unknown): Promise<{ version?: string; body: any }> {
  const out = await withTimeout(
    api.client.send(
      new InvokeCommand({ FunctionName: `${name}:live`, Payload: new TextEncoder().encode(JSON.stringify(event)) }),
    ),
    20_000,
    'Invoke',
  );
  return { version: out.ExecutedVersion, body: JSON.parse(new TextDecoder().decode(out.Payload)).body };
}

// ---
const deploySuite = suite('deployLambda');
deploySuite.before(async () => {
  api = await startEndpoint();
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-deploy-'));
});
deploySuite.after(async () => {
  await api?.close();
  rmSync(scratch, { recursive: true, force: true });
});

deploySuite(
  'creates the function, publishes version 1, points alias live at it and registers lambda://REGION/NAME:ALIAS',
  async () => {
    const lines: string[] = [];
    const result = await deploy('test/fixtures/lambda', { lines, env: { GREETING: 'one' } });
    assert.equal(
      [result.name, result.version, result.address],
      ['lambda-fixture', '1', 'lambda://us-east-1/lambda-fixture:live'],
    );
    assert.equal(result.topics, ['orders.created']);
    assert.ok(result.endpoints.includes('Fixture.Hello'));
    assert.match(
      lines.join('\n'),
      /built lambda-fixture for Lambda: .*function\.zip \([\d.]+ KiB\)\ncreating lambda-fixture in us-east-1 at http:\/\/127\.0\.0\.1:\d+\npublished version 1\ncreated alias live for version 1\nregistered lambda-fixture at lambda:\/\/us-east-1\/lambda-fixture:live/,
    );
    const [record] = await createFileRegistry({ home: scratch }).getService('lambda-fixture');
    assert.equal(record!.nodes, [
      {
        id: 'lambda-fixture-lambda-us-east-1-lambda-fixture',
        address: result.address,
        metadata: { target: 'lambda', 'lambda-endpoint': api.url },
      },
    ]);
    assert.ok(record!.endpoints.some((e) => e.name === 'orders.created' && e.metadata.subscriber === 'true'));
    assert.equal(await invokeAlias('lambda-fixture', { endpoint: 'Fixture.Env', body: { names: ['GREETING'] } }), {
      version: '1',
      body: { GREETING: 'one' },
    });
  },
);

deploySuite(
  'redeploys: the code, then the configuration, with the waiters between; version 2 and the alias moved',
  async () => {
    const lines: string[] = [];
    const result = await deploy('test/fixtures/lambda', { lines, env: { GREETING: 'two' }, memory: 256, timeout: 10 });
    assert.is(result.version, '2');
    assert.match(
      lines.join('\n'),
      /updating the code of lambda-fixture .*\nupdating the configuration of lambda-fixture\npublished version 2\nmoved alias live to version 2/,
    );
    assert.equal(
      await invokeAlias('lambda-fixture', {
        endpoint: 'Fixture.Env',
        body: { names: ['GREETING', 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE'] },
      }),
      { version: '2', body: { GREETING: 'two', AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256' } },
    );
    assert.is(
      (await createFileRegistry({ home: scratch }).getService('lambda-fixture'))[0]!.nodes.length,
      1,
      'one node still',
    );
  },
);

deploySuite('a deploy during another update is refused with 409, waits for that update and then succeeds', async () => {
  const gate = join(scratch, 'gate');
  writeFileSync(gate, '');
  await deploy('test/fixtures/lambda-gate', { env: { LAMBDA_GATE: gate } });
  rmSync(gate); // the next environment waits in its init: the update stays in progress
  const first = deploy('test/fixtures/lambda-gate', { env: { LAMBDA_GATE: gate } });
  await eventually(
    async () => (await lastUpdateStatus('lambda-gate')) === 'InProgress',
    20_000,
    'the first update in progress',
  );
  const lines: string[] = [];
  const second = deploy('test/fixtures/lambda-gate', { lines, env: { LAMBDA_GATE: gate, GREETING: 'second' } });
  await eventually(
    () => lines.includes('lambda-gate: another update is in progress; waiting for it'),
    20_000,
    'the second deploy waiting',
  );
  writeFileSync(gate, '');
  const [a, b] = await Promise.all([first, second]);
  assert.ok(/^\d+$/.test(a.version!) && /^\d+$/.test(b.version!), `versions ${a.version}, ${b.version}`);
  assert.is(await lastUpdateStatus('lambda-gate'), 'Successful');
  const { body } = await invokeAlias('lambda-gate', { endpoint: 'Gate.Greeting' });
  assert.ok(body.greeting === null || body.greeting === 'second', JSON.stringify(body));
});

deploySuite('dry run: builds and says what it would do, without creating or registering anything', async () => {
  const result = await deploy('test/fixtures/lambda-events', { dryRun: true, env: { MICRO_BROKER: 'local' } });
  assert.is(result.version, undefined);
  assert.equal(result.plan, [
    `create lambda-events in us-east-1 at ${api.url} (nodejs22.x, index.handler, 128 MB, 3 s, role arn:aws:iam::000000000000:role/micro-fn-local), or if it exists update its code, then its configuration`,
    'environment: MICRO_BROKER',
    'publish a version and point alias live at it',
    'register lambda-events at lambda://us-east-1/lambda-events:live (Orders.Place, topic orders.placed)',
  ]);
  assert.ok(result.zip.size > 0);
  const err = (await rejects(() =>
    api.client.send(new GetFunctionCommand({ FunctionName: 'lambda-events' })),
  )) as Error;
  assert.is(err.name, 'ResourceNotFoundException');
  assert.equal(await createFileRegistry({ home: scratch }).getService('lambda-events'), []);
});

deploySuite('refuses settings Lambda does not take, saying which', async () => {
  const memory = (await rejects(() => deploy('test/fixtures/lambda', { memory: 64 }))) as Error;
  assert.is(memory.message, '--memory takes 128 to 10240 (MB) on Lambda; got 64');
  const alias = (await rejects(() => deploy('test/fixtures/lambda', { alias: '42' }))) as Error;
  assert.match(alias.message, /^--alias 42: /);
});

runWithRic(deploySuite);
