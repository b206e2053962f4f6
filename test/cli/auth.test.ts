/**
 * serve's credential, SigV4 on its Lambda API and `--auth`, attacked as a stranger on the same machine would: the
 * real CLI, a real `micro-fn serve`, plain HTTP from outside. Each attack is shown to work with the credential (so
 * the test can see it), and to fail without.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateFunctionCommand,
  GetFunctionCommand,
  InvokeCommand,
  LambdaClient,
  waitUntilFunctionActiveV2,
} from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { zip } from '../../adapters/lambda/zip.js';
import { readCredential } from '../../runtime/plugins/local/credential.js';
import { cli, controlHeaders, start, tempHome, type Running } from './helpers.js';
import { eventually, sleep, withTimeout } from '../helpers.js';
import { ricAvailable, signedFetch } from '../adapters/lambda/helpers.js';

const ROLE = 'arn:aws:iam::000000000000:role/micro-fn-test';

/**
 * Where attack code leaves its marker: a folder anyone may write, since serve runs functions as an unprivileged user
 * when it is root.
 */
function markerDir(s: Serve): string {
  const dir = join(s.scratch.home, '..', `${s.scratch.home.split('/').pop()}-markers`);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  return dir;
}

interface Serve {
  scratch: ReturnType<typeof tempHome>;
  env: Record<string, string>;
  serve: Running;
  gateway: string;
}

async function startServe(args: string[] = []): Promise<Serve> {
  const scratch = tempHome();
  const env = { MICRO_FN_HOME: scratch.home };
  const serve = start(['serve', '--address', '127.0.0.1:0', '--quiet', ...args], env);
  const [, gateway] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return { scratch, env, serve, gateway: gateway! };
}

async function stopServe(s: Serve | undefined): Promise<void> {
  if (!s) return;
  s.serve.child.kill('SIGTERM');
  await s.serve.exited(15_000).catch(() => s.serve.kill());
  s.scratch.cleanup();
  rmSync(`${s.scratch.home}-markers`, { recursive: true, force: true });
}

const run = async (s: Serve, args: string[], extra: Record<string, string> = {}) => {
  const r = await cli(args, { ...s.env, ...extra }, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const post = (s: Serve, path: string, body: unknown, headers: Record<string, string> = {}) =>
  withTimeout(
    fetch(`${s.gateway}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    }),
    15_000,
    `POST ${path}`,
  );

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** A module that, when loaded, leaves `marker` behind: what an attacker's code would do. */
const markerModule = (marker: string) =>
  `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport const handler = async () => ({ ok: true });\n`;

// ---
const control = suite('micro-fn serve: the control service needs the credential');
let c: Serve;

control.before(async () => {
  c = await startServe();
  await run(c, ['deploy', 'examples/events']);
});

control.after(() => stopServe(c));

control('makes the credential on first start: 256-bit control token, 0600 file in a 0700 folder', () => {
  const file = join(c.scratch.home, 'auth', 'credential.json');
  assert.is(readFileSync(file).length > 0, true);
  assert.is(statSync(file).mode & 0o777, 0o600);
  assert.is(statSync(join(c.scratch.home, 'auth')).mode & 0o777, 0o700);
  const credential = readCredential(c.scratch.home)!;
  assert.ok(Buffer.from(credential.control, 'base64url').length >= 32, 'at least 256 bits');
});

control(
  'Runtime.Deploy of a bundle that writes a marker: 401 with no token, a wrong one, or a truncated one (3 tries), and the marker never appears; with the credential it does',
  async () => {
    const marker = join(markerDir(c), 'deploy-marker');
    const dir = join(c.scratch.home, 'functions', 'evil');
    mkdirSync(dir, { recursive: true });
    const bundle = join(dir, 'index.mjs');
    writeFileSync(bundle, markerModule(marker));
    const token = readCredential(c.scratch.home)!.control;
    for (const headers of [{}, bearer('x'.repeat(token.length)), bearer(token.slice(0, -1))]) {
      const res = await post(c, '/micro-fn/Runtime.Deploy', { bundle }, headers);
      assert.is(res.status, 401, JSON.stringify(headers));
      const error = (await res.json()) as { id: string; code: number; detail: string; status: string };
      assert.equal([error.id, error.code, error.status], ['micro-fn', 401, 'Unauthorized']);
      assert.match(error.detail, /credential/);
    }
    await sleep(1500);
    assert.is(existsSync(marker), false, 'the bundle never ran');
    // The same request with the credential runs it: the test can see the attack when it works.
    await post(c, '/micro-fn/Runtime.Deploy', { bundle }, controlHeaders(c.scratch.home));
    await eventually(() => existsSync(marker), 10_000, 'the marker, with the credential');
  },
);

control('every other control endpoint (8) answers 401 without the credential, and nothing changes', async () => {
  const endpoints: [string, unknown][] = [
    ['Runtime.Remove', { name: 'events' }],
    ['Runtime.List', {}],
    ['Broker.Subscribe', { topic: 'user.created', queue: 'events' }],
    ['Broker.Poll', { id: 'x', wait: 0 }],
    ['Broker.Settle', { id: 'x', token: 'y', action: 'ack' }],
    ['Broker.Unsubscribe', { id: 'x' }],
    ['Dlq.List', { topic: 'user.created' }],
    ['Dlq.Replay', { topic: 'user.created' }],
  ];
  const statuses = await Promise.all(
    endpoints.map(async ([e, body]) => (await post(c, `/micro-fn/${e}`, body)).status),
  );
  assert.equal(statuses, Array(8).fill(401), endpoints.map(([e], i) => `${e} ${statuses[i]}`).join(', '));
  const list = (await (await post(c, '/micro-fn/Runtime.List', {}, controlHeaders(c.scratch.home))).json()) as {
    functions: { name: string }[];
  };
  assert.ok(
    list.functions.some((f) => f.name === 'events'),
    'events is still deployed',
  );
});

control(
  'Broker.Subscribe to a function’s queue group without the credential is 401, and all 20 of its messages reach the function',
  async () => {
    const stolen = await post(c, '/micro-fn/Broker.Subscribe', { topic: 'user.created', queue: 'events' });
    assert.is(stolen.status, 401);
    for (let id = 1; id <= 20; id++) {
      const res = await post(c, '/micro-fn/Broker.Publish', { topic: 'user.created', payload: { id } });
      assert.is(res.status, 200, 'publishing is open on loopback, as calls are');
    }
    const seen = () => {
      const file = join(c.scratch.home, 'logs', 'events.log');
      const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
      return new Set([...text.matchAll(/user (\d+) created/g)].map((m) => m[1])).size;
    };
    await eventually(() => seen() === 20, 30_000, 'all 20 messages handled by events');
    assert.is(seen(), 20);
  },
);

control(
  'the CLI needs no flag: deploy, call, publish, services, dlq, remove (6 commands) all use the credential by themselves',
  async () => {
    await run(c, ['deploy', 'examples/helloworld']);
    assert.is(
      (await run(c, ['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}'])).stdout,
      '{"message":"Hello Ada"}\n',
    );
    await run(c, ['publish', 'user.created', '{"id":100}']);
    assert.match((await run(c, ['services'])).stdout, /helloworld/);
    await run(c, ['dlq', 'user.created']);
    await run(c, ['remove', 'helloworld']);
  },
);

control(
  "a function process gets the Lambda API's invoke-only pair, never the control token nor the administrator's secret",
  async () => {
    await run(c, ['deploy', 'test/fixtures/env-dump']);
    const res = await post(c, '/env-dump/Env.Dump', {});
    assert.is(res.status, 200);
    const text = await res.text();
    const credential = readCredential(c.scratch.home)!;
    assert.not.ok(text.includes(credential.control), 'no control token in its environment');
    assert.not.ok(text.includes(credential.aws.secretAccessKey), "no administrator's secret");
    assert.not.ok(text.includes(credential.jwtKey), 'no signing key');
    const { env } = JSON.parse(text) as { env: Record<string, string> };
    assert.is(env.MICRO_FN_AWS_ACCESS_KEY_ID, credential.awsInvoke.accessKeyId);
    assert.is(env.MICRO_FN_AWS_SECRET_ACCESS_KEY, credential.awsInvoke.secretAccessKey);
  },
);

// ---
const lambda = suite("micro-fn serve: the Lambda API checks SigV4 against serve's key pairs");
let l: Serve;
let sdk: LambdaClient;
const secretValue = `hunter2-${process.pid}`;

lambda.before(async () => {
  l = await startServe();
  const { aws } = readCredential(l.scratch.home)!;
  sdk = new LambdaClient({ endpoint: l.gateway, region: 'us-east-1', credentials: aws, maxAttempts: 1 });
});

lambda.after(async () => {
  sdk?.destroy();
  await stopServe(l);
});

const createBody = (name: string, marker: string, variables: Record<string, string> = {}) =>
  JSON.stringify({
    FunctionName: name,
    Runtime: 'nodejs22.x',
    Handler: 'index.handler',
    Role: ROLE,
    Code: {
      ZipFile: Buffer.from(zip([{ name: 'index.mjs', data: new TextEncoder().encode(markerModule(marker)) }])).toString(
        'base64',
      ),
    },
    Environment: { Variables: variables },
  });

lambda(
  "CreateFunction with a zip that writes a marker: unsigned, wrong secret, unknown key, 20 minutes old, or the invoke-only key (5 tries) get AWS's 403s, and the marker never appears",
  async () => {
    const marker = join(markerDir(l), 'lambda-marker');
    const url = `${l.gateway}/2015-03-31/functions`;
    const body = createBody('evil', marker);
    const { aws, awsInvoke } = readCredential(l.scratch.home)!;
    const tries: [string, () => Promise<Response>, string][] = [
      [
        'unsigned',
        () => fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } }),
        'MissingAuthenticationTokenException',
      ],
      [
        'wrong secret',
        () => signedFetch(url, { method: 'POST', body }, { ...aws, secretAccessKey: `${aws.secretAccessKey}x` }),
        'InvalidSignatureException',
      ],
      [
        'unknown key',
        () => signedFetch(url, { method: 'POST', body }, { accessKeyId: 'AKIANOTSERVES000000', secretAccessKey: 's' }),
        'UnrecognizedClientException',
      ],
      [
        'stale',
        () => signedFetch(url, { method: 'POST', body }, aws, new Date(Date.now() - 20 * 60_000)),
        'InvalidSignatureException',
      ],
      ['invoke-only', () => signedFetch(url, { method: 'POST', body }, awsInvoke), 'AccessDeniedException'],
    ];
    for (const [what, send, type] of tries) {
      const res = await withTimeout(send(), 15_000, what);
      assert.is(res.status, 403, what);
      assert.is(res.headers.get('x-amzn-errortype'), type, what);
      const error = (await res.json()) as Record<string, string>;
      assert.equal(Object.keys(error), ['Type', 'message'], what);
      assert.is(error.Type, 'User');
    }
    await sleep(1500);
    assert.is(existsSync(marker), false, 'the zip never ran');
    if (!ricAvailable()) return;
    // Signed right, it runs: the test can see the attack when it works.
    const res = await withTimeout(signedFetch(url, { method: 'POST', body }, aws), 30_000, 'signed');
    assert.is(res.status, 201, await res.clone().text());
    await eventually(() => existsSync(marker), 20_000, 'the marker, signed right');
  },
);

lambda(
  "GetFunction without a signature, and with the invoke-only key, is 403 without the environment's values; the administrator's pair through the AWS SDK sees them",
  async () => {
    if (!ricAvailable()) return;
    const marker = join(markerDir(l), 'unused-marker');
    await withTimeout(
      sdk.send(
        new CreateFunctionCommand({
          FunctionName: 'keeper',
          Runtime: 'nodejs22.x',
          Handler: 'index.handler',
          Role: ROLE,
          Code: { ZipFile: zip([{ name: 'index.mjs', data: new TextEncoder().encode(markerModule(marker)) }]) },
          Environment: { Variables: { API_KEY: secretValue } },
        }),
      ),
      30_000,
      'CreateFunction',
    );
    await waitUntilFunctionActiveV2({ client: sdk, maxWaitTime: 30 }, { FunctionName: 'keeper' });
    const url = `${l.gateway}/2015-03-31/functions/keeper`;
    const unsigned = await withTimeout(fetch(url), 10_000, 'unsigned GetFunction');
    assert.is(unsigned.status, 403);
    assert.not.ok((await unsigned.text()).includes(secretValue));
    const invokeOnly = await signedFetch(url, {}, readCredential(l.scratch.home)!.awsInvoke);
    assert.is(invokeOnly.status, 403);
    assert.is(invokeOnly.headers.get('x-amzn-errortype'), 'AccessDeniedException');
    assert.not.ok((await invokeOnly.text()).includes(secretValue));
    const got = await sdk.send(new GetFunctionCommand({ FunctionName: 'keeper' }));
    assert.is(got.Configuration?.Environment?.Variables?.API_KEY, secretValue);
  },
);

lambda('the invoke-only pair may Invoke (200), and the AWS SDK works with the stored pair', async () => {
  if (!ricAvailable()) return;
  const invoker = new LambdaClient({
    endpoint: l.gateway,
    region: 'us-east-1',
    credentials: readCredential(l.scratch.home)!.awsInvoke,
    maxAttempts: 1,
  });
  try {
    const out = await withTimeout(invoker.send(new InvokeCommand({ FunctionName: 'keeper' })), 30_000, 'Invoke');
    assert.is(out.StatusCode, 200);
    assert.equal(JSON.parse(new TextDecoder().decode(out.Payload)), { ok: true });
  } finally {
    invoker.destroy();
  }
});

lambda('the right key id with a wrong secret, through the AWS SDK itself: 403 InvalidSignatureException', async () => {
  const { aws } = readCredential(l.scratch.home)!;
  const wrong = new LambdaClient({
    endpoint: l.gateway,
    region: 'us-east-1',
    credentials: { accessKeyId: aws.accessKeyId, secretAccessKey: 'not-the-secret' },
    maxAttempts: 1,
  });
  try {
    const err = (await wrong.send(new GetFunctionCommand({ FunctionName: 'keeper' })).catch((e: unknown) => e)) as {
      name: string;
      $metadata: { httpStatusCode: number };
    };
    assert.equal([err.name, err.$metadata.httpStatusCode], ['InvalidSignatureException', 403]);
  } finally {
    wrong.destroy();
  }
});

lambda('micro-fn auth aws prints an AWS CLI profile with the stored pair and the running serve', async () => {
  const { stdout } = await run(l, ['auth', 'aws']);
  const { aws } = readCredential(l.scratch.home)!;
  assert.equal(stdout.trim().split('\n'), [
    '[profile micro-fn]',
    `aws_access_key_id = ${aws.accessKeyId}`,
    `aws_secret_access_key = ${aws.secretAccessKey}`,
    'region = us-east-1',
    `endpoint_url = ${l.gateway}`,
  ]);
  const config = join(l.scratch.home, 'aws-config');
  await run(l, ['auth', 'aws', '--write', '--profile', 'local'], { AWS_CONFIG_FILE: config });
  assert.match(readFileSync(config, 'utf8'), /^\[profile local\]\naws_access_key_id = MFNA/);
});

lambda(
  'the AWS CLI, unchanged, with the profile micro-fn auth aws writes: create-function, invoke, get-function by ARN and $LATEST (3 commands)',
  async () => {
    const probe = spawnSync('aws', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0 || !ricAvailable()) {
      console.log('  (skipped: the AWS CLI or the runtime interface client is not installed)');
      return;
    }
    const config = join(l.scratch.home, 'aws-cli-config');
    await run(l, ['auth', 'aws', '--write'], { AWS_CONFIG_FILE: config });
    const zipFile = join(l.scratch.home, 'cli.zip');
    writeFileSync(
      zipFile,
      zip([{ name: 'index.mjs', data: new TextEncoder().encode('export const handler = async (e) => ({ got: e });') }]),
    );
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: l.scratch.home,
      AWS_CONFIG_FILE: config,
      AWS_SHARED_CREDENTIALS_FILE: join(l.scratch.home, 'none'),
    };
    const aws = (...args: string[]) => {
      const r = spawnSync('aws', ['--profile', 'micro-fn', 'lambda', ...args], {
        env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.is(r.status, 0, `aws lambda ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    const created = aws(
      'create-function',
      '--function-name',
      'by-cli',
      '--runtime',
      'nodejs22.x',
      '--handler',
      'index.handler',
      '--role',
      ROLE,
      '--zip-file',
      `fileb://${zipFile}`,
      '--query',
      'FunctionArn',
      '--output',
      'text',
    );
    assert.is(created, 'arn:aws:lambda:us-east-1:000000000000:function:by-cli');
    await eventually(
      () =>
        aws('get-function-configuration', '--function-name', 'by-cli', '--query', 'State', '--output', 'text') ===
        'Active',
      30_000,
      'by-cli Active',
      200,
    );
    const out = join(l.scratch.home, 'out.json');
    // Version 2 of the AWS CLI reads --payload as base64 unless told otherwise.
    const raw = probe.stdout.startsWith('aws-cli/1') ? [] : ['--cli-binary-format', 'raw-in-base64-out'];
    aws('invoke', '--function-name', 'by-cli', ...raw, '--payload', '{"a":1}', out);
    assert.equal(JSON.parse(readFileSync(out, 'utf8')), { got: { a: 1 } });
    const state = aws(
      'get-function',
      '--function-name',
      created,
      '--qualifier',
      '$LATEST',
      '--query',
      'Configuration.State',
    );
    assert.is(state, '"Active"');
  },
);

// ---
const bind = suite('micro-fn serve --address');

bind('refuses 0.0.0.0, :PORT and :: without --auth (3 addresses), exit 1 naming the flag', async () => {
  const scratch = tempHome();
  try {
    for (const address of ['0.0.0.0:0', ':0', '[::]:0']) {
      const r = await cli(['serve', '--address', address], { MICRO_FN_HOME: scratch.home }, { timeout: 15_000 });
      assert.is(r.code, 1, address);
      assert.match(r.stderr, /--auth/, address);
      assert.not.match(r.stderr, /listening/);
    }
  } finally {
    scratch.cleanup();
  }
});

bind('with --auth, binds 0.0.0.0 and its banner says so, with the address it registers', async () => {
  const scratch = tempHome();
  const s = start(['serve', '--address', '0.0.0.0:0', '--auth'], { MICRO_FN_HOME: scratch.home });
  try {
    const [, port, registered] = await s.waitFor(/listening on http:\/\/0\.0\.0\.0:(\d+) \(registered as (\S+)\)/);
    assert.is(registered, `http://127.0.0.1:${port}`);
  } finally {
    s.child.kill('SIGTERM');
    await s.exited(15_000).catch(() => s.kill());
    scratch.cleanup();
  }
});

// ---
const auth = suite('micro-fn serve --auth');
let a: Serve;

auth.before(async () => {
  a = await startServe(['--auth']);
  await Promise.all([run(a, ['deploy', 'examples/helloworld']), run(a, ['deploy', 'test/fixtures/relay'])]);
});

auth.after(() => stopServe(a));

const token = async (...args: string[]) => (await run(a, ['auth', 'token', ...args])).stdout.trim();
const hello = (headers: Record<string, string> = {}) => post(a, '/helloworld/Greeter.Hello', { name: 'Ada' }, headers);
const statusOf = async (res: Promise<Response>) => (await res).status;

auth('no token 401, a valid token 200, GET /health stays open (200)', async () => {
  const res = await hello();
  assert.is(res.status, 401);
  const error = (await res.json()) as { code: number; detail: string };
  assert.is(error.code, 401);
  assert.match(error.detail, /micro-fn auth token/);
  assert.is(await statusOf(hello(bearer(await token('--scope', 'user')))), 200);
  assert.is((await fetch(`${a.gateway}/health`)).status, 200);
});

auth('the control token is not a token for a function (401): it is for the control service only', async () => {
  assert.is(await statusOf(hello(controlHeaders(a.scratch.home))), 401);
});

auth('a token whose payload was altered (scopes widened) is 401; an expired one (2 s) is 401', async () => {
  const valid = await token('--scope', 'user');
  const [head, payload, signature] = valid.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { scopes: string[] };
  claims.scopes = ['admin'];
  const altered = `${head}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
  const res = await hello(bearer(altered));
  assert.is(res.status, 401);
  assert.match(((await res.json()) as { detail: string }).detail, /signature/);
  const issued = Date.now();
  const short = await token('--scope', 'user', '--ttl', '2s');
  const { exp } = JSON.parse(Buffer.from(short.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number };
  assert.ok(exp * 1000 >= issued + 2000, `the token lives at least its 2 s (exp ${exp}, issued ${issued})`);
  assert.is(await statusOf(hello(bearer(short))), 200, 'valid while fresh (and kept verified)');
  await sleep(Math.max(0, exp * 1000 - Date.now()) + 100);
  const expired = await hello(bearer(short));
  assert.is(expired.status, 401);
  assert.match(((await expired.json()) as { detail: string }).detail, /expired/);
});

auth(
  'a rule asking for scope admin: 403 for a user token, 200 for an admin token, and micro-fn call (no flags) still works',
  async () => {
    await run(a, ['auth', 'rule', 'set', 'helloworld/Greeter.Hello', '--scope', 'admin']);
    const user = bearer(await token('--scope', 'user'));
    await eventually(async () => (await statusOf(hello(user))) === 403, 5000, 'the rule applies');
    const res = await hello(user);
    assert.is(res.status, 403);
    assert.match(((await res.json()) as { detail: string }).detail, /scope admin/);
    assert.is(await statusOf(hello(bearer(await token('--scope', 'ops,admin')))), 200);
    assert.is(
      (await run(a, ['call', 'helloworld', 'Greeter.Hello', '{"name":"cli"}'])).stdout,
      '{"message":"Hello cli"}\n',
    );
    await run(a, ['auth', 'rule', 'remove', 'helloworld/Greeter.Hello']);
    await eventually(async () => (await statusOf(hello(user))) === 200, 5000, 'the rule is gone');
  },
);

auth(
  'a public rule lets an anonymous call through; the function then calls another with its own token (scope function)',
  async () => {
    await run(a, ['auth', 'rule', 'set', 'relay/Relay.Hello', '--public']);
    const relay = () => post(a, '/relay/Relay.Hello', { name: 'anonymous' });
    await eventually(async () => (await statusOf(relay())) === 200, 5000, 'the public rule applies');
    assert.equal(await (await relay()).json(), { message: 'Hello anonymous' });
    assert.is(await statusOf(hello()), 401, 'helloworld itself is still closed');
  },
);

auth(
  "the caller's token is carried to the next hop: relay reaches an admin-only helloworld with an admin token (200), not with a user token (403)",
  async () => {
    await run(a, ['auth', 'rule', 'set', 'relay/Relay.Hello', '--account']);
    await run(a, ['auth', 'rule', 'set', 'helloworld', '--scope', 'admin']);
    const user = bearer(await token('--scope', 'user'));
    await eventually(async () => (await statusOf(hello(user))) === 403, 5000, 'the rules apply');
    const viaRelay = (headers: Record<string, string>) => post(a, '/relay/Relay.Hello', { name: 'hop' }, headers);
    const admin = await viaRelay(bearer(await token('--scope', 'admin')));
    assert.is(admin.status, 200);
    assert.equal(await admin.json(), { message: 'Hello hop' });
    const denied = await viaRelay(user);
    assert.is(denied.status, 403, 'the user token went on, not the function’s own');
    await run(a, ['auth', 'rule', 'remove', 'helloworld']);
    await run(a, ['auth', 'rule', 'remove', 'relay/Relay.Hello']);
  },
);

auth('Broker.Publish needs a token (401 without, 200 with); micro-fn publish needs no flag', async () => {
  const publish = (headers: Record<string, string> = {}) =>
    post(a, '/micro-fn/Broker.Publish', { topic: 'audit', payload: {} }, headers);
  assert.is(await statusOf(publish()), 401);
  assert.is(await statusOf(publish(bearer(await token('--scope', 'user')))), 200);
  await run(a, ['publish', 'audit', '{}']);
});

control.run();
lambda.run();
bind.run();
auth.run();
