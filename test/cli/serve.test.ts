/** The local target end to end: the real CLI, a real `micro-fn serve`, real function processes. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, controlHeaders, lastJson, start, tempHome, type Running } from './helpers.js';
import { eventually, sleep, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;
const extra: Running[] = [];

async function startServe(args: string[] = []): Promise<[Running, string]> {
  const s = start(['serve', '--address', '127.0.0.1:0', ...args], env);
  const [, address] = await s.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return [s, address!];
}

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 30000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  withTimeout(
    fetch(`${gateway}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } }),
    15000,
    `POST ${path}`,
  );

/** A deployed function's pool figures, as `Runtime.List` reports them. */
async function poolStats(name: string): Promise<{ warm: number; starting: number } | undefined> {
  const { functions } = (await (await post('/micro-fn/Runtime.List', '{}', controlHeaders(scratch.home))).json()) as {
    functions: { name: string; stats: { warm: number; starting: number } }[];
  };
  return functions.find((f) => f.name === name)?.stats;
}

// ---
const local = suite('micro-fn serve');

local.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  [serve, gateway] = await startServe();
  await ok(['deploy', 'examples/helloworld', '--target', 'local']);
});

local.after(async () => {
  for (const r of [...extra, serve]) {
    r.child.kill('SIGTERM');
    await r.exited(10000).catch(() => r.kill());
  }
  scratch.cleanup();
});

local('deploys helloworld and answers a call through the registry', async () => {
  const r = await ok(['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}']);
  assert.is(r.stdout, '{"message":"Hello Ada"}\n');
  const services = await ok(['services', '--json']);
  const names = (JSON.parse(services.stdout) as { name: string }[]).map((s) => s.name);
  assert.ok(names.includes('helloworld') && names.includes('micro-fn'), names.join(','));
  const [described] = JSON.parse((await ok(['describe', 'helloworld', '--json'])).stdout) as {
    endpoints: { name: string }[];
    nodes: { address: string }[];
  }[];
  assert.equal(
    described!.endpoints.map((e) => e.name),
    ['Greeter.Hello'],
  );
  assert.is(described!.nodes[0]!.address, gateway);
});

local('runs every invocation in a fresh, single-use process', async () => {
  await ok(['deploy', 'test/fixtures/big', '--pool', '2']);
  const pids: number[] = [];
  for (let i = 0; i < 4; i++) pids.push(((await (await post('/big/Big.Pid', '{}')).json()) as { pid: number }).pid);
  assert.is(new Set(pids).size, 4, `pids ${pids.join(', ')}`);
  for (const pid of pids) await eventually(() => !alive(pid), 5000, `process ${pid} exits after its invocation`);
});

local('with --pool 0, starts a process for each invocation as it comes, and keeps none waiting', async () => {
  await ok(['deploy', 'test/fixtures/big', '--pool', '0']);
  const pids: number[] = [];
  for (let i = 0; i < 2; i++) {
    const res = await post('/big/Big.Pid', '{}');
    assert.is(res.status, 200);
    pids.push(((await res.json()) as { pid: number }).pid);
  }
  assert.is(new Set(pids).size, 2, `pids ${pids.join(', ')}`);
  const { warm, starting } = (await poolStats('big'))!;
  assert.equal({ warm, starting }, { warm: 0, starting: 0 });
});

local('hands an 8 MiB reply back whole, and a request with line breaks and non-ASCII text intact', async () => {
  const size = 8 << 20;
  const big = (await (await post('/big/Big.Get', JSON.stringify({ size }))).json()) as { data: string };
  assert.is(big.data.length, size);
  const text = 'two\nlines, ünïcødé, and a \u2028 separator';
  const reply = await post('/helloworld/Greeter.Hello', JSON.stringify({ name: text }));
  assert.equal(await reply.json(), { message: `Hello ${text}` });
});

local('gives a function process only the environment it declares plus MICRO_*, and a memory limit', async () => {
  await ok(['deploy', 'test/fixtures/big', '--env', 'GREETING=hi', '--memory', '128']);
  const { keys, greeting } = (await (await post('/big/Big.Env', '{}')).json()) as { keys: string[]; greeting: string };
  assert.is(greeting, 'hi');
  assert.equal(
    keys.filter((k) => !k.startsWith('MICRO_')),
    ['GREETING'],
    keys.join(','),
  );
  const hog = await post('/big/Big.Hog', '{}');
  assert.is(hog.status, 500);
  assert.match(
    ((await hog.json()) as { detail: string }).detail,
    /crashed: its process used \d+ MiB, over its memory limit/,
  );
  assert.is((await post('/big/Big.Pid', '{}')).status, 200, 'the spawner keeps serving');
});

local(
  'answers errors as error JSON: bad request, unknown service and endpoint, malformed JSON, oversize body',
  async () => {
    const bad = await cli(['call', 'helloworld', 'Greeter.Hello', '{}'], env);
    assert.is(bad.code, 1);
    assert.equal(lastJson(bad.stderr), {
      id: 'helloworld',
      code: 400,
      detail: 'name is required',
      status: 'Bad Request',
    });
    const nobody = await cli(['call', 'nobody', 'X.Y', '{}'], env);
    assert.is((lastJson(nobody.stderr) as { code: number }).code, 404);
    const noEndpoint = await post('/helloworld/Greeter.Bye', '{}');
    assert.is(noEndpoint.status, 404);
    assert.match(((await noEndpoint.json()) as { detail: string }).detail, /Greeter.Bye/);
    const unknown = await post('/', '{}', { 'Micro-Service': 'nobody', 'Micro-Endpoint': 'X.Y' });
    assert.is(unknown.status, 404);
    assert.is(JSON.parse(unknown.headers.get('micro-error')!).code, 404);
    const malformed = await post('/helloworld/Greeter.Hello', '{"name":');
    assert.is(malformed.status, 400);
    assert.is(((await malformed.json()) as { code: number }).code, 400);
    const big = await post('/helloworld/Greeter.Hello', JSON.stringify({ name: 'x'.repeat(2 << 20) }));
    assert.is(big.status, 413);
    assert.is(((await big.json()) as { code: number }).code, 413);
  },
);

local('answers a crash with 500 and keeps serving', async () => {
  await ok(['deploy', 'test/fixtures/noisy']);
  const crash = await post('/noisy/Noisy.Crash', '{}');
  assert.is(crash.status, 500);
  assert.equal(await crash.json(), {
    id: 'noisy',
    code: 500,
    detail: 'internal server error',
    status: 'Internal Server Error',
  });
  const talk = await post('/noisy/Noisy.Talk', '{}');
  assert.equal(await talk.json(), { ok: true });
  // Its output was captured, tagged with the function and the invocation id.
  await eventually(
    () => /noisy \S+ stdout: chatter on stdout/.test(readFileSync(join(scratch.home, 'logs', 'noisy.log'), 'utf8')),
    5000,
    'the log line',
  );
  const logs = await ok(['logs', 'noisy']);
  assert.match(logs.stdout, /chatter on stdout/);
});

local('kills an invocation past its timeout and answers 408', async () => {
  await ok(['deploy', 'test/fixtures/big', '--timeout', '1s']);
  const started = Date.now();
  const slow = await post('/big/Big.Slow', '{"ms":5000}');
  assert.is(slow.status, 408);
  assert.ok(Date.now() - started < 4000, 'it did not wait for the handler');
  const fine = await post('/big/Big.Slow', '{"ms":10}');
  assert.is(fine.status, 200);
});

local(
  "fires the handler's signal at its timeout: the function answers 408 itself, one ignoring it is stopped",
  async () => {
    await ok(['deploy', 'test/fixtures/stuck', '--timeout', '500ms']);
    const aware = await post('/stuck/Stuck.Aware', '{}');
    assert.is(aware.status, 408);
    assert.match(await aware.text(), /deadline|timed out|timeout/i);
    const log = join(scratch.home, 'logs', 'stuck.log');
    await eventually(() => existsSync(log) && /signal fired: 408/.test(readFileSync(log, 'utf8')), 5000, 'the signal');
    const ignoring = await post('/stuck/Stuck.Timer', '{}'); // never settles, keeps a timer: ended after the grace
    assert.is(ignoring.status, 408);
    await ok(['remove', 'stuck']);
  },
);

local('kills a process that lingers after its answer, and refills the pool', async () => {
  await ok(['deploy', 'test/fixtures/linger', '--pool', '1', '--timeout', '500ms']);
  const { pid } = (await (await post('/linger/Linger.Pid', '{}')).json()) as { pid: number };
  await eventually(() => !alive(pid), 5000, `lingering process ${pid} is stopped`);
  await eventually(async () => (await poolStats('linger'))?.warm === 1, 5000, 'a warm process again');
  await ok(['remove', 'linger']);
});

local('answers 429 at once when the concurrency limit and the queue are full', async () => {
  await ok(['deploy', 'test/fixtures/big', '--concurrency', '1', '--queue', '1', '--timeout', '10s']);
  const calls = [0, 1, 2, 3].map(() => post('/big/Big.Slow', '{"ms":700}'));
  const statuses = (await Promise.all(calls)).map((r) => r.status).sort();
  assert.equal(statuses, [200, 200, 429, 429]);
});

local('swaps a redeployed version without failing invocations in flight', async () => {
  await ok(['deploy', 'test/fixtures/big', '--timeout', '10s']);
  const inflight = post('/big/Big.Slow', '{"ms":800}');
  await new Promise((r) => setTimeout(r, 200));
  await ok(['deploy', 'test/fixtures/big', '--timeout', '10s']);
  const res = await inflight;
  assert.is(res.status, 200);
  assert.equal(await res.json(), { slept: 800 });
});

local('runs the events function once per published message', async () => {
  await ok(['deploy', 'examples/events']);
  await ok(['publish', 'user.created', '{"id":1}']);
  await eventually(
    () =>
      existsSync(join(scratch.home, 'logs', 'events.log')) &&
      /user 1 created/.test(readFileSync(join(scratch.home, 'logs', 'events.log'), 'utf8')),
    10000,
    'the events log',
  );
  const log = readFileSync(join(scratch.home, 'logs', 'events.log'), 'utf8');
  assert.is(log.match(/user 1 created/g)!.length, 1);
});

local('handles a message again when its process is killed in the middle', async () => {
  await ok(['deploy', 'test/fixtures/worker']);
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-work-'));
  chmodSync(dir, 0o777); // functions write here, as nobody when serve runs as root
  try {
    await ok(['publish', 'work.hang', JSON.stringify({ dir })]);
    await eventually(() => existsSync(join(dir, 'attempt-1')), 10000, 'the first attempt');
    const pid = Number(readFileSync(join(dir, 'attempt-1'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await eventually(() => existsSync(join(dir, 'attempt-2')), 10000, 'the redelivery');
    assert.ok(Number(readFileSync(join(dir, 'attempt-2'), 'utf8')) !== pid, 'handled by another process');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

local('dead-letters a message that always fails, and replays it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-work-'));
  chmodSync(dir, 0o777); // functions write here, as nobody when serve runs as root
  try {
    await ok(['publish', 'work.poison', JSON.stringify({ dir })]);
    let letters: { body: string }[] = [];
    await eventually(
      async () => {
        letters = JSON.parse((await ok(['dlq', 'work.poison', '--json'])).stdout);
        return letters.length === 1;
      },
      15000,
      'the dead letter',
    );
    assert.equal(JSON.parse(letters[0]!.body), { dir });
    const attempts = readFileSync(join(dir, 'poison'), 'utf8').trim().split('\n');
    assert.equal(attempts, ['1', '2', '3', '4', '5']);
    const replay = await ok(['dlq', 'work.poison', '--replay', '--json']);
    assert.equal(JSON.parse(replay.stdout), { replayed: 1 });
    await eventually(
      () => readFileSync(join(dir, 'poison'), 'utf8').trim().split('\n').length === 10,
      15000,
      'the replayed attempts',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

local('a burst of messages past the concurrency limit and queue waits for slots: none fails with 429', async () => {
  await ok(['deploy', 'test/fixtures/worker', '--concurrency', '1', '--queue', '0']);
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-work-'));
  chmodSync(dir, 0o777); // functions write here, as nobody when serve runs as root
  try {
    // Published through the gateway as the local broker does (the CLI's publish is tested elsewhere): 12 at once.
    const published = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        post('/micro-fn/Broker.Publish', JSON.stringify({ topic: 'work.spread', payload: { dir, i } })),
      ),
    );
    assert.equal(
      published.map((res) => res.status),
      Array.from({ length: 12 }, () => 200),
    );
    await Promise.all(published.map((res) => res.arrayBuffer()));
    const lines = () =>
      existsSync(join(dir, 'handled')) ? readFileSync(join(dir, 'handled'), 'utf8').trim().split('\n') : [];
    await eventually(() => lines().length >= 12, 20000, '12 messages handled');
    await sleep(300);
    assert.is(lines().length, 12, 'each message once');
    assert.equal(JSON.parse((await ok(['dlq', 'work.spread', '--json'])).stdout), [], 'nothing dead-lettered');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

local('removes a function: it is deregistered and no longer answers', async () => {
  await ok(['deploy', 'test/fixtures/noisy']);
  await ok(['remove', 'noisy']);
  const res = await post('/noisy/Noisy.Talk', '{}');
  assert.is(res.status, 404);
  const services = JSON.parse((await ok(['services', '--json'])).stdout) as { name: string }[];
  assert.not.ok(services.some((s) => s.name === 'noisy'));
  const again = await cli(['remove', 'noisy'], env);
  assert.is(again.code, 1);
});

local('shares the registry with a second serve without corrupting it', async () => {
  const [second, address] = await startServe();
  extra.push(second);
  const ambiguous = await cli(['deploy', 'examples/helloworld'], env);
  assert.is(ambiguous.code, 1);
  assert.match(ambiguous.stderr, /2 micro-fn serve runtimes are registered .*choose one with --runtime URL/);
  await ok(['deploy', 'examples/helloworld', '--runtime', address]);
  // 10 calls at once, each resolving helloworld in the registry both serves write.
  const calls = await Promise.all(
    Array.from({ length: 10 }, (_, i) => ok(['call', 'helloworld', 'Greeter.Hello', `{"name":"n${i}"}`])),
  );
  assert.equal(
    calls.map((c) => JSON.parse(c.stdout)),
    Array.from({ length: 10 }, (_, i) => ({ message: `Hello n${i}` })),
  );
  const [control] = JSON.parse((await ok(['describe', 'micro-fn', '--json'])).stdout) as {
    nodes: { address: string }[];
  }[];
  assert.equal(control!.nodes.map((n) => n.address).sort(), [gateway, address].sort());
  for (const file of walk(join(scratch.home, 'registry'))) JSON.parse(readFileSync(file, 'utf8'));
  second.child.kill('SIGTERM');
  assert.is(await second.exited(10000), 0);
  const [after] = JSON.parse((await ok(['describe', 'micro-fn', '--json'])).stdout) as {
    nodes: { address: string }[];
  }[];
  assert.equal(
    after!.nodes.map((n) => n.address),
    [gateway],
  );
});

local.run();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

// ---
const errorsSuite = suite('micro-fn deploy without serve');

errorsSuite('says in one line that no serve is running', async () => {
  const home = tempHome();
  try {
    const r = await cli(['deploy', 'examples/helloworld'], { MICRO_FN_HOME: home.home });
    assert.is(r.code, 1);
    assert.match(r.stderr, /no `micro-fn serve` is running/);
    assert.not.match(r.stderr, /\n\s+at /);
  } finally {
    home.cleanup();
  }
});

errorsSuite.run();
