// Execution environments running built zips under the official runtime interface client.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LambdaEnvironment } from '../../../serve/lambda/environment.js';
import type { InvokeResult } from '../../../serve/lambda/runtime-api.js';
import { withTimeout } from '../../helpers.js';
import { buildPackage, runWithRic, type Package } from '../../adapters/lambda/helpers.js';

type Failure = Extract<InvokeResult, { error: unknown }>;
type Hello = { body: { invocation: number; pid: number } };

const hello = { endpoint: 'Fixture.Hello', body: { name: 'Ada' } };

function payload<T>(result: InvokeResult): T {
  if ('error' in result) throw new Error(`the invocation failed: ${JSON.stringify(result.error)}`);
  return JSON.parse(result.payload) as T;
}

function failed(result: InvokeResult): Failure['error'] {
  if (!('error' in result)) throw new Error(`expected an error, got ${result.payload}`);
  return result.error;
}

// ---
const environment = suite('LambdaEnvironment');
let pkg: Package;
let env: LambdaEnvironment | undefined;
environment.before(async () => {
  pkg = await buildPackage('test/fixtures/lambda/index.ts');
});
environment.after.each(async () => {
  await env?.close();
  env = undefined;
});
environment.after(() => pkg.cleanup());

const start = async (timeoutMs = 5000) =>
  (env = await LambdaEnvironment.start({ taskRoot: pkg.taskRoot, functionName: 'lambda-fixture', timeoutMs }));
const run = (event: unknown, timeoutMs?: number) => withTimeout(env!.invoke(event, { timeoutMs }), 15_000, 'invoke');

environment('serves sequential invocations from one warm process', async () => {
  await start();
  const first = payload<Hello>(await run(hello));
  const second = payload<Hello>(await run(hello));
  assert.is(first.body.invocation, 1);
  assert.is(second.body.invocation, 2);
  assert.is(second.body.pid, first.body.pid);
});

environment('runs queued invocations one after the other', async () => {
  await start();
  const results = await Promise.all([run(hello), run(hello), run(hello)]);
  assert.equal(results.map((r) => payload<Hello>(r).body.invocation).sort(), [1, 2, 3]);
  assert.is(env!.pending, 0);
});

environment(
  'stops an invocation past its timeout with "Task timed out", and starts a fresh process for the next',
  async () => {
    await start(400);
    const before = payload<Hello>(await run(hello));
    const error = failed(await run({ endpoint: 'Fixture.Sleep', body: { ms: 5000 } }));
    assert.is(error.errorType, 'Sandbox.Timedout');
    assert.match(error.errorMessage, /Task timed out after 0\.40 seconds$/);
    const after = payload<Hello>(await run(hello));
    assert.is(after.body.invocation, 1);
    assert.is.not(after.body.pid, before.body.pid);
  },
);

environment('reports a runtime that exits mid-invocation as Runtime.ExitError, and recovers', async () => {
  await start();
  const error = failed(await run({ endpoint: 'Fixture.Exit' }));
  assert.is(error.errorType, 'Runtime.ExitError');
  assert.match(error.errorMessage, /Runtime exited with error: exit status 3$/);
  assert.is(payload<Hello>(await run(hello)).body.invocation, 1);
});

environment('gives every invocation the init error of a module that throws while loading', async () => {
  const broken = await buildPackage('test/fixtures/lambda-init-error/index.ts');
  try {
    env = await LambdaEnvironment.start({ taskRoot: broken.taskRoot, functionName: 'lambda-init-error' });
    for (let i = 0; i < 2; i++) {
      const error = failed(await run({ endpoint: 'Never.Called' }));
      assert.is(error.errorType, 'Error');
      assert.is(error.errorMessage, 'LAMBDA_FIXTURE_CONFIGURED is not set');
      assert.ok(error.trace?.length, 'a stack trace');
    }
  } finally {
    await env?.close();
    broken.cleanup();
  }
});

environment("passes the function its environment, under Lambda's reserved variables", async () => {
  env = await LambdaEnvironment.start({
    taskRoot: pkg.taskRoot,
    functionName: 'lambda-fixture',
    env: { GREETING: 'hi', AWS_LAMBDA_FUNCTION_NAME: 'spoofed' },
    memoryMb: 256,
  });
  const names = [
    'GREETING',
    'AWS_LAMBDA_FUNCTION_NAME',
    'AWS_LAMBDA_FUNCTION_MEMORY_SIZE',
    'AWS_LAMBDA_FUNCTION_VERSION',
    'LAMBDA_TASK_ROOT',
    '_HANDLER',
    'AWS_REGION',
    'HOME_OF_THE_TEST_RUNNER',
  ];
  process.env.HOME_OF_THE_TEST_RUNNER = 'leaked';
  try {
    assert.equal(payload<{ body: unknown }>(await run({ endpoint: 'Fixture.Env', body: { names } })).body, {
      GREETING: 'hi',
      AWS_LAMBDA_FUNCTION_NAME: 'lambda-fixture',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      LAMBDA_TASK_ROOT: pkg.taskRoot,
      _HANDLER: 'index.handler',
      AWS_REGION: 'us-east-1',
      HOME_OF_THE_TEST_RUNNER: null,
    });
  } finally {
    delete process.env.HOME_OF_THE_TEST_RUNNER;
  }
});

environment('rejects invocations once closed', async () => {
  await start();
  await env!.close();
  const err = await env!.invoke(hello).then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(String(err?.message), /closed/);
});

runWithRic(environment);
