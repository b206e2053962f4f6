/**
 * A serve restart keeps every deployed function callable: real `micro-fn serve` processes at one address, killed
 * (SIGKILL) or stopped (SIGTERM) and started again, with 3 local functions and 2 functions of its Lambda API (one
 * with 2 versions and 2 aliases) deployed by the CLI, as a user would.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  CreateAliasCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  LambdaClient,
} from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ServiceRecord } from '../../runtime/core/registry.js';
import { readCredential } from '../../runtime/plugins/local/credential.js';
import { createFileRegistry } from '../../runtime/plugins/local/registry.js';
import { cli, controlHeaders, dummyAws, type Running, start, tempHome } from './helpers.js';
import { eventually, freePort, withTimeout } from '../helpers.js';
import { ricAvailable } from '../adapters/lambda/helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running | undefined;
let gateway: string;
let address: string;

/** The functions deployed, by target: 3 local, 2 on serve's Lambda API; `micro-fn` is serve's own entry. */
const LOCAL = ['big', 'events', 'helloworld'];
const LAMBDA = ['lambda-events', 'lambda-fixture'];
const ALL = [...LOCAL, ...LAMBDA, 'micro-fn'].sort();

async function startServe(): Promise<Running> {
  serve = start(['serve', '--address', address], env);
  await serve.waitFor(/micro-fn serve listening on http:\/\/127\.0\.0\.1:\d+\n/, 60_000);
  return serve;
}

async function kill(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  const { child } = serve!;
  const exit = new Promise<string | number | null>((resolve) =>
    child.exitCode !== null || child.signalCode !== null
      ? resolve(child.signalCode ?? child.exitCode)
      : child.once('exit', (code, killed) => resolve(killed ?? code)),
  );
  child.kill(signal);
  assert.is(await withTimeout(exit, 30_000, `serve's exit after ${signal}`), signal === 'SIGKILL' ? 'SIGKILL' : 0);
  serve = undefined;
}

const ok = async (args: string[], timeout = 60_000) => {
  const r = await cli(args, env, { timeout });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const services = async () =>
  (JSON.parse((await ok(['services', '--json'])).stdout) as { name: string; nodes: { id: string }[] }[]).map(
    (s) => s.name,
  );

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  withTimeout(
    fetch(`${gateway}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    }),
    30_000,
    `POST ${path}`,
  );

const logOf = (name: string) => {
  const file = join(scratch.home, 'logs', `${name}.log`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
};

function lambda(): LambdaClient {
  const { aws } = readCredential(scratch.home)!;
  return new LambdaClient({ endpoint: gateway, region: 'us-east-1', credentials: aws, maxAttempts: 1 });
}

async function invokeEnv(client: LambdaClient, qualifier: string): Promise<[string | undefined, string]> {
  const out = await withTimeout(
    client.send(
      new InvokeCommand({
        FunctionName: 'lambda-fixture',
        Qualifier: qualifier,
        Payload: new TextEncoder().encode(JSON.stringify({ endpoint: 'Fixture.Env', body: { names: ['GREETING'] } })),
      }),
    ),
    30_000,
    `Invoke lambda-fixture:${qualifier}`,
  );
  return [
    out.ExecutedVersion,
    (JSON.parse(new TextDecoder().decode(out.Payload)) as { body: { GREETING: string } }).body.GREETING,
  ];
}

/**
 * Every one of the 5 functions answers, with the options it was deployed with; each check names what it proves.
 * Returns how many functions answered.
 */
async function checkAll(id: number): Promise<number> {
  let answered = 0;
  // 1. helloworld, with serve's defaults.
  assert.equal(await (await post('/helloworld/Greeter.Hello', { name: 'Ada' })).json(), { message: 'Hello Ada' });
  answered++;
  // 2. big: --env GREETING=hi, --pool 2, --concurrency 1 --queue 0, --timeout 1s, --memory 96.
  const { keys, greeting } = (await (await post('/big/Big.Env', {})).json()) as { keys: string[]; greeting: string };
  assert.equal([greeting, keys.filter((k) => !k.startsWith('MICRO_'))], ['hi', ['GREETING']], 'its declared env');
  const listed = (await (await post('/micro-fn/Runtime.List', {}, controlHeaders(scratch.home))).json()) as {
    functions: { name: string; pool: number }[];
  };
  assert.is(listed.functions.find((f) => f.name === 'big')?.pool, 2, 'its pool');
  const both = await Promise.all([post('/big/Big.Slow', { ms: 400 }), post('/big/Big.Slow', { ms: 400 })]);
  assert.equal(both.map((r) => r.status).sort(), [200, 429], 'concurrency 1 and no queue');
  await Promise.all(both.map((r) => r.arrayBuffer()));
  assert.is((await post('/big/Big.Slow', { ms: 5000 })).status, 408, 'its 1 s timeout');
  const hog = await post('/big/Big.Hog', {});
  const used = Number(/used (\d+) MiB/.exec(((await hog.json()) as { detail: string }).detail)?.[1]);
  assert.ok(hog.status === 500 && used < 256, `stopped past its 96 MiB, not serve's 256 (used ${used} MiB)`);
  answered++;
  // 3. events: its topic triggers it.
  await ok(['publish', 'user.created', JSON.stringify({ id })]);
  await eventually(() => logOf('events').includes(`user ${id} created`), 20_000, `user ${id} handled`);
  answered++;
  // 4. lambda-fixture through the registry (alias live, version 2), its settings, and alias prev on version 1.
  assert.equal(JSON.parse((await ok(['call', 'lambda-fixture', 'Fixture.Env', '{"names":["GREETING"]}'])).stdout), {
    GREETING: 'two',
  });
  const client = lambda();
  try {
    const config = await withTimeout(
      client.send(new GetFunctionConfigurationCommand({ FunctionName: 'lambda-fixture' })),
      10_000,
      'GetFunctionConfiguration',
    );
    assert.equal([config.State, config.MemorySize, config.Timeout], ['Active', 256, 10]);
    assert.equal(await invokeEnv(client, 'live'), ['2', 'two']);
    assert.equal(await invokeEnv(client, 'prev'), ['1', 'one']);
  } finally {
    client.destroy();
  }
  answered++;
  // 5. lambda-events: its topic, bridged from serve's broker.
  await ok(['publish', 'orders.placed', JSON.stringify({ id, ok: true })]);
  await eventually(() => logOf('lambda-events').includes(`order ${id} handled`), 30_000, `order ${id} handled`);
  answered++;
  return answered;
}

// ---
const restart = suite('a serve restart keeps every deployed function callable');

restart.before(async () => {
  scratch = tempHome();
  env = {
    MICRO_FN_HOME: scratch.home,
    ...dummyAws,
    NODE_NO_WARNINGS: '1',
  };
  address = `127.0.0.1:${await freePort()}`;
  gateway = `http://${address}`;
  await startServe();
});

restart.after(async () => {
  if (serve) {
    serve.child.kill('SIGTERM');
    await serve.exited(20_000).catch(() => serve?.kill());
  }
  scratch.cleanup();
});

restart('deploys 3 local functions and 2 Lambda functions (2 versions, 2 aliases), all answering', async () => {
  await ok(['deploy', 'examples/helloworld']);
  await ok([
    'deploy',
    'test/fixtures/big',
    ...['--env', 'GREETING=hi', '--pool', '2', '--concurrency', '1', '--queue', '0', '--timeout', '1s'],
    ...['--memory', '96'],
  ]);
  await ok(['deploy', 'examples/events']);
  const lambdaFlags = ['--target', 'lambda', '--endpoint', gateway, '--memory', '256', '--timeout', '10s'];
  await ok(['deploy', 'test/fixtures/lambda', ...lambdaFlags, '--env', 'GREETING=one']);
  await ok(['deploy', 'test/fixtures/lambda', ...lambdaFlags, '--env', 'GREETING=two']);
  const client = lambda();
  await withTimeout(
    client.send(new CreateAliasCommand({ FunctionName: 'lambda-fixture', Name: 'prev', FunctionVersion: '1' })),
    10_000,
    'CreateAlias',
  ).finally(() => client.destroy());
  await ok(['deploy', 'test/fixtures/lambda-events', '--target', 'lambda', '--endpoint', gateway]);
  await serve!.waitFor(/bridging topic orders\.placed to Lambda function lambda-events/);
  assert.equal(await services(), ALL);
  assert.is(await checkAll(1), 5);
});

restart('records them as 0600 files in 0700 folders under MICRO_FN_HOME/state (5 records)', () => {
  const state = join(scratch.home, 'state');
  const [folder] = readdirSync(state);
  const records = [
    ...readdirSync(join(state, folder!, 'functions')).map((f) => join(state, folder!, 'functions', f)),
    ...readdirSync(join(state, folder!, 'lambda'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => join(state, folder!, 'lambda', f)),
  ];
  assert.equal(records.map((f) => f.slice(join(state, folder!).length + 1)).sort(), [
    'functions/big.json',
    'functions/events.json',
    'functions/helloworld.json',
    'lambda/lambda-events.json',
    'lambda/lambda-fixture.json',
  ]);
  for (const file of records) assert.is(statSync(file).mode & 0o777, 0o600, file);
  for (const dir of [state, join(state, folder!), join(state, folder!, 'functions'), join(state, folder!, 'lambda')])
    assert.is(statSync(dir).mode & 0o777, 0o700, dir);
  assert.match(readFileSync(join(state, folder!, 'functions', 'big.json'), 'utf8'), '"GREETING":"hi"');
});

restart(
  'after a SIGKILL, the next serve at the address replaces the entries left, restores all 5, and services lists exactly them',
  async () => {
    const before = JSON.parse((await ok(['describe', 'micro-fn', '--json'])).stdout) as { nodes: { id: string }[] }[];
    await kill('SIGKILL');
    const s = await startServe();
    assert.match(s.stderr(), `replaced the registry entries a serve at ${gateway} left: `);
    for (const name of LOCAL) assert.match(s.stderr(), new RegExp(`restored ${name} \\(`));
    for (const name of LAMBDA) assert.match(s.stderr(), `restored the Lambda function ${name}\n`);
    assert.equal(await services(), ALL);
    const after = JSON.parse((await ok(['describe', 'micro-fn', '--json'])).stdout) as { nodes: { id: string }[] }[];
    assert.is(after[0]!.nodes.length, 1, 'one runtime, no leftover of the killed one');
    assert.is.not(after[0]!.nodes[0]!.id, before[0]!.nodes[0]!.id);
    assert.is(await checkAll(2), 5);
  },
);

restart(
  'leaves the entries of another serve at the same address alone (a registry shared with another machine): 2 of 2 kept',
  async () => {
    // As another machine's serve at 127.0.0.1:<same port> would register them in a shared registry.
    const registry = createFileRegistry({ home: scratch.home });
    const foreign: ServiceRecord[] = [
      {
        name: 'elsewhere',
        version: 'latest',
        metadata: {},
        endpoints: [],
        nodes: [{ id: 'elsewhere-serve-1-other', address: gateway, metadata: { gateway: 'true' } }],
      },
      {
        name: 'elsewhere-lambda',
        version: 'latest',
        metadata: {},
        endpoints: [],
        nodes: [
          {
            id: 'elsewhere-lambda-us-east-1-elsewhere-lambda',
            address: 'lambda://us-east-1/elsewhere-lambda:live',
            metadata: { target: 'lambda', 'lambda-endpoint': gateway, 'lambda-host': 'another-serve' },
          },
        ],
      },
    ];
    try {
      for (const record of foreign) await registry.register(record, { ttl: 0 });
      await kill('SIGKILL');
      await startServe();
      assert.equal(await services(), [...ALL, 'elsewhere', 'elsewhere-lambda'].sort());
      assert.is(await checkAll(3), 5);
    } finally {
      for (const record of foreign) await registry.deregister(record);
      await registry.close();
    }
  },
);

restart('with the killed serve still registered, the CLI needs no --runtime once the next one starts', async () => {
  await kill('SIGKILL');
  const stale = JSON.parse((await ok(['describe', 'micro-fn', '--json'])).stdout) as { nodes: unknown[] }[];
  assert.is(stale[0]!.nodes.length, 1, 'the killed serve left its entry');
  await startServe();
  const deployed = await cli(['deploy', 'test/fixtures/noisy'], env, { timeout: 60_000 });
  assert.is(deployed.code, 0, deployed.stderr);
  assert.not.match(deployed.stderr, 'runtimes are registered');
  await ok(['remove', 'noisy']);
});

restart('after a graceful stop, nothing of it is listed; the next serve restores all 5 again', async () => {
  await kill('SIGTERM');
  assert.equal(await services(), [], 'services lists no function that cannot be called');
  await startServe();
  assert.equal(await services(), ALL);
  assert.is(await checkAll(4), 5);
});

restart('removes a local and a Lambda function after a restart; they stay removed across the next one', async () => {
  await ok(['remove', 'big']);
  const removed = await ok(['remove', 'lambda-events', '--target', 'lambda']);
  assert.match(
    removed.stderr,
    `removed lambda-events: deleted Lambda function lambda-events in us-east-1 at ${gateway}, deregistered`,
  );
  const left = ALL.filter((n) => n !== 'big' && n !== 'lambda-events');
  assert.equal(await services(), left);
  await kill('SIGKILL');
  const s = await startServe();
  assert.not.match(s.stderr(), /restored (big|the Lambda function lambda-events)/);
  assert.equal(await services(), left);
  assert.is((await post('/big/Big.Env', {})).status, 404);
});

restart(
  'skips a torn record, leaves out one whose bundle is gone and one with a refused variable, saying why; serve starts (4 of 4 said)',
  async () => {
    await ok(['deploy', 'test/fixtures/noisy']);
    await kill('SIGTERM');
    const state = join(scratch.home, 'state', readdirSync(join(scratch.home, 'state'))[0]!);
    const record = (file: string) => join(state, file);
    const torn = (file: string) => writeFileSync(record(file), readFileSync(record(file), 'utf8').slice(0, 40));
    torn('functions/helloworld.json');
    torn('lambda/lambda-fixture.json');
    const events = JSON.parse(readFileSync(record('functions/events.json'), 'utf8')) as { value: { bundle: string } };
    rmSync(dirname(events.value.bundle), { recursive: true });
    const noisy = JSON.parse(readFileSync(record('functions/noisy.json'), 'utf8')) as { value: { env?: object } };
    noisy.value.env = { NODE_OPTIONS: '--require /tmp/evil.js' };
    writeFileSync(record('functions/noisy.json'), JSON.stringify(noisy));

    const s = await startServe();
    const said = s.stderr();
    assert.match(said, `skipped the record ${record('functions/helloworld.json')}: `);
    assert.match(said, `skipped the record ${record('lambda/lambda-fixture.json')}: `);
    assert.match(said, /left out events: the bundle .* does not exist .*; its record is removed \(deploy it again\)/);
    assert.match(said, /left out noisy: .*NODE_OPTIONS.*; its record is kept and tried again at the next start/);
    assert.equal(await services(), ['micro-fn'], 'nothing that cannot be called is listed');
    assert.not.ok(existsSync(record('functions/events.json')));
    await ok(['remove', 'noisy']);
    assert.not.ok(existsSync(record('functions/noisy.json')), '`remove` forgets a function left out');
  },
);

if (ricAvailable()) restart.run();
