/**
 * The Lambda target end to end, as processes: `micro-fn deploy --target lambda` against the Lambda API of a
 * real `micro-fn serve` (AWS SDK included), then `micro-fn call` and `micro-fn publish` reaching the function.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, dummyAws, lastJson, type Running, start, tempHome } from './helpers.js';
import { eventually } from '../helpers.js';
import { ricAvailable } from '../adapters/lambda/helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const logOf = (name: string) => {
  const file = join(scratch.home, 'logs', `${name}.log`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
};

// ---
const lambda = suite('micro-fn deploy --target lambda');

lambda.before(async () => {
  scratch = tempHome();
  env = {
    MICRO_FN_HOME: scratch.home,
    ...dummyAws,
  };
  serve = start(['serve', '--address', '127.0.0.1:0'], env);
  gateway = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
});

lambda.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(15_000).catch(() => serve.kill());
  scratch.cleanup();
});

lambda("deploys helloworld to serve's Lambda API, and micro-fn call reaches it through the registry", async () => {
  const deployed = await ok(['deploy', 'examples/helloworld', '--target', 'lambda', '--endpoint', gateway]);
  assert.match(deployed.stderr, /creating helloworld in us-east-1 at http:\/\/127\.0\.0\.1:\d+\n/);
  assert.match(
    deployed.stderr,
    /deployed helloworld \(Greeter\.Hello\) at lambda:\/\/us-east-1\/helloworld:live, version 1, in \d+ ms/,
  );
  assert.is((await ok(['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}'])).stdout, '{"message":"Hello Ada"}\n');
  const bad = await cli(['call', 'helloworld', 'Greeter.Hello', '{}'], env, { timeout: 30_000 });
  assert.is(bad.code, 1);
  assert.equal(lastJson(bad.stderr), {
    id: 'helloworld',
    code: 400,
    detail: 'name is required',
    status: 'Bad Request',
  });
  const [described] = JSON.parse((await ok(['describe', 'helloworld', '--json'])).stdout) as {
    nodes: { address: string }[];
  }[];
  assert.equal(
    described!.nodes.map((n) => n.address),
    ['lambda://us-east-1/helloworld:live'],
  );
  assert.match(logOf('helloworld'), /REPORT RequestId: [0-9a-f-]{36}\tDuration/);

  const redeployed = await ok([
    'deploy',
    'examples/helloworld',
    '--target',
    'lambda',
    '--endpoint',
    gateway,
    '--memory',
    '256',
    '--timeout',
    '10s',
  ]);
  assert.match(
    redeployed.stderr,
    /updating the code of helloworld.*\nupdating the configuration of helloworld\npublished version 2\nmoved alias live to version 2\n/,
  );
  assert.is(
    (await ok(['call', 'helloworld', 'Greeter.Hello', '{"name":"again"}'])).stdout,
    '{"message":"Hello again"}\n',
  );
});

lambda('a function on the local target calls the Lambda-hosted one through the registry', async () => {
  // The local bundle imports micro-fn's own copy of the AWS SDK, only once it calls a lambda:// node.
  const r = await ok(['invoke', 'test/fixtures/relay', 'Relay.Hello', '{"name":"Lin"}']);
  assert.is(r.stdout, '{"message":"Hello Lin"}\n');
});

lambda('runs a Lambda function once per published message, and dead-letters one that keeps failing', async () => {
  await ok(['deploy', 'test/fixtures/lambda-events', '--target', 'lambda', '--endpoint', gateway]);
  await serve.waitFor(
    /bridging topic orders\.placed to Lambda function lambda-events \(lambda:\/\/us-east-1\/lambda-events:live\)/,
  );
  await ok(['publish', 'orders.placed', '{"id":1,"ok":true}']);
  await eventually(() => /order 1 handled/.test(logOf('lambda-events')), 20_000, 'the order handled');
  await ok(['publish', 'orders.placed', '{"id":2,"ok":false}']);
  let letters: { body: string }[] = [];
  await eventually(
    async () => {
      letters = JSON.parse((await ok(['dlq', 'orders.placed', '--json'])).stdout);
      return letters.length === 1;
    },
    30_000,
    'the dead letter',
  );
  assert.equal(JSON.parse(letters[0]!.body), { id: 2, ok: false });
  const attempts = () =>
    serve.stderr().match(/Lambda function lambda-events failed message \S+ on orders\.placed: .*"order 2 is not ok"/g)
      ?.length ?? 0;
  await eventually(() => attempts() >= 5, 5000, 'five failed attempts reported');
  assert.is(attempts(), 5);
  assert.is(logOf('lambda-events').match(/order 1 handled/g)?.length, 1, 'the good order once');
});

lambda('--dry-run builds and prints the plan without reaching AWS or the registry', async () => {
  const r = await ok([
    'deploy',
    'examples/events',
    '--target',
    'lambda',
    '--dry-run',
    '--role',
    'arn:aws:iam::123456789012:role/fn',
    '--alias',
    'prod',
    '--env',
    'SLACK_URL=https://hooks.example',
  ]);
  assert.is(
    r.stdout,
    [
      'dry run, nothing deployed; would:',
      '  create events in us-east-1 (nodejs22.x, index.handler, 128 MB, 3 s, role arn:aws:iam::123456789012:role/fn), or if it exists update its code, then its configuration',
      '  environment: SLACK_URL',
      '  publish a version and point alias prod at it',
      '  register events at lambda://us-east-1/events:prod (topic user.created)',
      '',
    ].join('\n'),
  );
  assert.ok(
    r.stderr.includes(`built events for Lambda: ${join(scratch.home, 'builds', 'lambda', 'events', 'function.zip')}`),
    r.stderr,
  );
  const names = (JSON.parse((await ok(['services', '--json'])).stdout) as { name: string }[]).map((s) => s.name);
  assert.not.ok(names.includes('events'), names.join(','));
});

lambda('documents the Lambda flags in --help, and refuses the local-only ones in one line', async () => {
  const help = (await ok(['deploy', '--help'])).stdout;
  for (const flag of [
    '--role ARN',
    '--region REGION',
    '--alias NAME',
    '--endpoint URL',
    '--dry-run',
    'AWS_ENDPOINT_URL_LAMBDA',
  ])
    assert.ok(help.includes(flag), flag);
  const r = await cli(['deploy', 'examples/helloworld', '--target', 'lambda', '--pool', '2'], env);
  assert.is(r.code, 1);
  assert.is(r.stderr.trim(), 'micro-fn: --pool is not an option of --target lambda; it is for --target local');
});

lambda(
  "remove --target lambda deletes the function where its entry says it lives (serve's API standing in for AWS), and deregisters it",
  async () => {
    const local = await cli(['remove', 'helloworld'], env, { timeout: 30_000 });
    assert.is(local.code, 1);
    assert.match(
      local.stderr,
      'no function helloworld is deployed; helloworld is registered as a lambda function (lambda://us-east-1/helloworld:live): micro-fn remove helloworld --target lambda',
    );
    const removed = await ok(['remove', 'helloworld', '--target', 'lambda']);
    assert.match(
      removed.stderr,
      `removed helloworld: deleted Lambda function helloworld in us-east-1 at ${gateway}, deregistered\n`,
    );
    assert.is((await cli(['describe', 'helloworld'], env, { timeout: 30_000 })).code, 1, 'deregistered');
    const again = await cli(['remove', 'helloworld', '--target', 'lambda', '--endpoint', gateway], env, {
      timeout: 30_000,
    });
    assert.is(again.code, 1);
    assert.match(
      again.stderr,
      `there is no Lambda function helloworld to remove (us-east-1 at ${gateway}) and no registry entry of helloworld: check --region and --endpoint`,
    );
    // As for AWS: the API from the environment, the region from the flag.
    const flags = await cli(['remove', 'lambda-events', '--target', 'lambda', '--region', 'us-east-1'], {
      ...env,
      AWS_ENDPOINT_URL_LAMBDA: gateway,
    });
    assert.is(flags.code, 0, flags.stderr);
    const names = (JSON.parse((await ok(['services', '--json'])).stdout) as { name: string }[]).map((s) => s.name);
    assert.not.ok(names.includes('lambda-events'), names.join(','));
    const other = await cli(['remove', 'x', '--target', 'lambda', '--runtime', gateway], env);
    assert.is(
      other.stderr.trim(),
      'micro-fn: --runtime is not an option of remove --target lambda; it is for --target local',
    );
  },
);

if (ricAvailable()) lambda.run();
