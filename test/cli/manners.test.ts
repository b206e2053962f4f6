/**
 * CLI manners, as a user meets them, through the real built CLI: did you mean for commands, flags, services and
 * endpoints; what a call says when no serve runs; --json on every command that lists it (errors as error JSON, exit
 * codes kept); no AWS SDK notice on a Lambda deploy; a Lambda waiter's failure in one line.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LambdaClient, waitUntilFunctionActiveV2 } from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { waiterReason } from '../../adapters/lambda/deploy.js';
import { freePort, rejects, withTimeout } from '../helpers.js';
import { cli, lastJson, start, tempHome, type Running } from './helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running | undefined;
let gateway: string;

const run = (args: string[], timeout = 60_000) => cli(args, env, { timeout });

// ---
const without = suite('the CLI with no serve running');

without.before(() => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
});
without.after(() => scratch.cleanup());

without('an unknown command close to one suggests it (exit 1); with --json it is error JSON', async () => {
  const r = await run(['dpeloy', 'x']);
  assert.is(r.code, 1);
  assert.match(r.stderr, 'unknown command "dpeloy"; did you mean "deploy"?');
  const j = await run(['servics', '--json']);
  assert.is(j.code, 1);
  const error = lastJson(j.stderr) as { id: string; code: number; detail: string };
  assert.equal([error.id, error.code], ['micro-fn', 400]);
  assert.match(error.detail, 'did you mean "services"?');
  const far = await run(['zzzzzz']);
  assert.is(far.code, 1);
  assert.match(far.stderr, 'Commands:', 'nothing close: the list of commands');
});

without('an unknown flag suggests the closest one of that command (deploy: its targets’ flags too)', async () => {
  const call = await run(['call', 'a', 'B.c', '--tmeout', '1s']);
  assert.is(call.code, 1);
  assert.match(call.stderr, 'unknown option --tmeout; did you mean --timeout? (see micro-fn call --help)');
  const deploy = await run(['deploy', 'x', '--memry', '128']);
  assert.match(deploy.stderr, 'did you mean --memory?');
});

without('call says no serve is running and how to start one (404, exit 1)', async () => {
  const r = await run(['call', 'helloworld', 'Greeter.Hello']);
  assert.is(r.code, 1);
  const error = lastJson(r.stderr) as { code: number; detail: string };
  assert.is(error.code, 404);
  assert.match(error.detail, 'no micro-fn serve is running');
  assert.match(error.detail, 'in another terminal: micro-fn serve');
});

without(
  'every command’s --help exits 0, starts with its usage and lists --json (each of the 14 or more main lists)',
  async () => {
    const usage = await run(['--help']);
    const names = [...usage.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]!);
    assert.ok(names.length >= 14, `commands listed: ${names.join(', ')}`);
    await Promise.all(
      names.map(async (name) => {
        const r = await run([name, '--help']);
        assert.is(r.code, 0, `${name} --help: ${r.stderr}`);
        assert.ok(r.stdout.startsWith(`Usage: micro-fn ${name} `), `${name} --help starts with its usage`);
        assert.match(r.stdout, /--json /, `${name} --help lists --json`);
      }),
    );
  },
);

without('run --json: listening as JSON on stderr, how it ended as JSON on stdout (idle, exit 0)', async () => {
  const r = await run(['run', 'examples/helloworld', '--idle-timeout', '300ms', '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(/^http:\/\//.test((lastJson(r.stderr) as { listening: string }).listening), r.stderr);
  assert.equal(lastJson(r.stdout), { kind: 'idle', ok: true });
});

// ---
const withServe = suite('the CLI with a serve running');

withServe.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home, NODE_NO_WARNINGS: '' };
  const address = `127.0.0.1:${await freePort()}`;
  gateway = `http://${address}`;
  serve = start(['serve', '--address', address], env);
  await serve.waitFor(/micro-fn serve listening on http:\/\/127\.0\.0\.1:\d+\n/, 60_000);
  const r = await run(['deploy', 'examples/helloworld']);
  assert.is(r.code, 0, r.stderr);
});

withServe.after(async () => {
  if (serve) {
    serve.child.kill('SIGTERM');
    await serve.exited(20_000).catch(() => serve?.kill());
  }
  scratch.cleanup();
});

withServe(
  'call to an unknown endpoint lists the service’s endpoints and suggests the closest (404, exit 1)',
  async () => {
    const r = await run(['call', 'helloworld', 'Greeter.Helo', '{"name":"Ada"}']);
    assert.is(r.code, 1);
    const error = lastJson(r.stderr) as { code: number; detail: string };
    assert.is(error.code, 404);
    assert.match(error.detail, "did you mean Greeter.Hello? helloworld's endpoints: Greeter.Hello");
    const service = lastJson((await run(['call', 'helloworl', 'Greeter.Hello'])).stderr) as { detail: string };
    assert.match(service.detail, 'did you mean helloworld?');
  },
);

withServe(
  '--json: publish, services, describe, dlq, auth token and rule print JSON on stdout (6 commands, exit 0)',
  async () => {
    const outputs: [string[], (v: any) => boolean][] = [
      [['publish', 'user.created', '{"id":1}', '--json'], (v) => v.published === true && v.topic === 'user.created'],
      [['services', '--json'], (v) => Array.isArray(v) && v.some((s: { name: string }) => s.name === 'helloworld')],
      [['describe', 'helloworld', '--json'], (v) => v[0].name === 'helloworld'],
      [['dlq', 'user.created', '--json'], (v) => Array.isArray(v)],
      [['auth', 'token', '--json'], (v) => typeof v.token === 'string' && typeof v.expires === 'string'],
      [['auth', 'rule', 'set', 'helloworld', '--public', '--json'], (v) => v.set.access === 'public'],
    ];
    for (const [args, check] of outputs) {
      const r = await run(args);
      assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(check(JSON.parse(r.stdout)), `${args.join(' ')}: ${r.stdout}`);
    }
  },
);

withServe('--json errors are error JSON on stderr with exit 1 (describe, remove, dlq)', async () => {
  for (const args of [
    ['describe', 'nothing', '--json'],
    ['remove', 'nothing', '--json'],
    ['dlq', 'bad topic!', '--json'],
  ]) {
    const r = await run(args);
    assert.is(r.code, 1, args.join(' '));
    assert.is(r.stdout, '', args.join(' '));
    const error = JSON.parse(r.stderr.trim()) as Record<string, unknown>;
    assert.equal(Object.keys(error).sort(), ['code', 'detail', 'id', 'status'], args.join(' '));
  }
});

withServe(
  'deploy --target lambda prints one-line progress and summary, no AWS SDK notice; --json is the whole result',
  async () => {
    const r = await run(['deploy', 'test/fixtures/lambda', '--target', 'lambda', '--endpoint', gateway]);
    assert.is(r.code, 0, r.stderr);
    assert.not.match(r.stderr, 'NodeVersionSupportWarning');
    assert.not.match(r.stderr, 'AWS SDK');
    for (const line of r.stderr.trim().split('\n')) assert.ok(line.length < 400, `one line: ${line}`);
    assert.match(r.stderr, /deployed lambda-fixture .* version 1/);
    const j = await run(['deploy', 'test/fixtures/lambda', '--target', 'lambda', '--endpoint', gateway, '--json']);
    assert.is(j.code, 0, j.stderr);
    assert.is(j.stderr, '');
    assert.is((JSON.parse(j.stdout) as { name: string }).name, 'lambda-fixture');
    const call = await run(['call', 'lambda-fixture', 'Fixture.Hello', '{"name":"Ada"}']);
    assert.is(call.code, 0, call.stderr);
    assert.not.match(call.stderr, 'NodeVersionSupportWarning');
  },
);

withServe('after serve is killed, call and dlq say the serve registered there is not running', async () => {
  const { child } = serve!;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await withTimeout(gone, 20_000, "serve's exit after SIGKILL");
  serve = undefined;
  const call = await run(['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}']);
  assert.is(call.code, 1);
  assert.match((lastJson(call.stderr) as { detail: string }).detail, 'is not running');
  const dlq = await run(['dlq', 'user.created']);
  assert.is(dlq.code, 1);
  assert.match(dlq.stderr, 'is not running. Start one in another terminal: micro-fn serve');
});

// ---
const reason = suite('waiterReason');
let server: Server | undefined;

reason.after(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
});

reason('makes the AWS SDK waiter’s failure one line: State and StateReason, not the JSON of the answer', async () => {
  const stateReason = `the execution environment could not start: ${'x'.repeat(900)}`;
  server = createHttpServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        Configuration: {
          FunctionName: 'f',
          State: 'Failed',
          StateReason: stateReason,
          StateReasonCode: 'InternalError',
        },
        Code: { RepositoryType: 'S3' },
      }),
    );
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const client = new LambdaClient({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    maxAttempts: 1,
  });
  try {
    const err = (await rejects(() =>
      withTimeout(
        waitUntilFunctionActiveV2({ client, maxWaitTime: 5, minDelay: 0.05, maxDelay: 0.1 }, { FunctionName: 'f' }),
        10_000,
        'the waiter',
      ),
    )) as Error;
    assert.ok(err.message.startsWith('{'), 'the SDK gives the JSON of its last answer');
    const line = waiterReason(err.message);
    assert.is(line, `State Failed (${stateReason})`);
    assert.not.match(line, '{');
  } finally {
    client.destroy();
  }
  assert.is(waiterReason('not json at all'), 'not json at all');
  assert.is(waiterReason(`${'y'.repeat(300)}`).length, 200 + '… (--json shows all of it)'.length);
});

without.run();
withServe.run();
reason.run();
