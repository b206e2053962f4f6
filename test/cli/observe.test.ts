/**
 * What serve shows of invocations, end to end: a real `micro-fn serve --json`, real function processes, the real
 * CLI. The request log's lines (parsed), `micro-fn ps` and `micro-fn logs` after a known sequence of calls.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';
import type { RuntimeStats } from '../../runtime/plugins/local/protocol.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 30000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const hello = (body: string) =>
  withTimeout(
    fetch(`${gateway}/helloworld/Greeter.Hello`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    }).then(async (r) => ({ status: r.status, text: await r.text() })),
    15000,
    'call helloworld',
  );

/** serve's stdout as JSON objects: every line must be one. */
const printed = (): Record<string, unknown>[] =>
  serve
    .stdout()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const invocations = (fn: string) => printed().filter((o) => o.type === 'invocation' && o.function === fn);

const stats = async () => JSON.parse((await ok(['ps', '--json'])).stdout) as RuntimeStats;

// ---
const log = suite('micro-fn serve --json (the request log)');

log.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--json'], env);
  [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
  // --pool 0: every invocation is a cold start.
  await ok(['deploy', 'examples/helloworld', '--pool', '0']);
});

log.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10000).catch(() => serve.kill());
  scratch.cleanup();
});

log(
  'prints one JSON line per invocation: 2 ok + 1 error, each cold, with endpoint, status, duration and id',
  async () => {
    assert.is((await hello('{"name":"Ada"}')).status, 200);
    assert.is((await hello('{"name":"Bo"}')).status, 200);
    assert.is((await hello('{}')).status, 400);
    await eventually(() => invocations('helloworld').length === 3, 5000, 'three invocation lines');
    const lines = invocations('helloworld');
    assert.equal(
      lines.map((l) => [l.kind, l.endpoint, l.status, l.ok, l.cold, l.started]),
      [
        ['call', 'Greeter.Hello', 200, true, true, true],
        ['call', 'Greeter.Hello', 200, true, true, true],
        ['call', 'Greeter.Hello', 400, false, true, true],
      ],
    );
    for (const l of lines) {
      assert.ok(typeof l.ms === 'number' && l.ms > 0, `duration ${l.ms}`);
      assert.ok(typeof l.id === 'string' && l.id.length > 0, 'invocation id');
      assert.ok(!Number.isNaN(Date.parse(l.time as string)), `time ${l.time}`);
    }
    assert.is(lines[2]!.error, 'name is required');
  },
);

log(
  'counts them in Runtime.Stats (micro-fn ps --json): 4 invocations, 1 error, 3 cold starts after a warm call',
  async () => {
    // Redeployed with a warm process: the next call takes it. The counts are kept across the redeploy.
    await ok(['deploy', 'examples/helloworld', '--pool', '1']);
    assert.is((await hello('{"name":"Cy"}')).status, 200);
    await eventually(() => invocations('helloworld').length === 4, 5000, 'four invocation lines');
    assert.is(invocations('helloworld')[3]!.cold, false, 'the call after a redeploy with --pool 1 is warm');
    const fn = (await stats()).functions.find((f) => f.name === 'helloworld')!;
    assert.is(fn.kind, 'local');
    assert.equal(
      [fn.invocations, fn.errors, fn.coldStarts, fn.notStarted],
      [4, 1, 3, 0],
      'invocations, errors, cold starts, not started',
    );
    assert.is(fn.recent.count, 4);
    assert.is(fn.recent.errors, 1);
    assert.ok(fn.recent.p50! > 0 && fn.recent.p99! >= fn.recent.p50!, `p50 ${fn.recent.p50} p99 ${fn.recent.p99}`);
    await eventually(async () => (await stats()).functions[0]!.pool!.warm === 1, 10000, 'a warm process again');
  },
);

log(
  'prints broker deliveries with topic and attempt: a failing message 5 times (dead-lettered), a good one once',
  async () => {
    await ok(['deploy', 'examples/events']);
    await ok(['publish', 'user.created', '{"id":1}']);
    await ok(['publish', 'user.created', '{"id":"x"}']);
    await eventually(() => invocations('events').length === 6, 20000, 'six delivery lines');
    const lines = invocations('events');
    assert.ok(lines.every((l) => l.kind === 'message' && l.topic === 'user.created'));
    const failed = lines.filter((l) => !l.ok);
    assert.equal(
      failed.map((l) => [l.attempt, l.status]),
      [1, 2, 3, 4, 5].map((a) => [a, 400]),
    );
    assert.equal(
      lines.filter((l) => l.ok).map((l) => [l.attempt, l.status]),
      [[1, 200]],
    );
    const s = await stats();
    const events = s.functions.find((f) => f.name === 'events')!;
    assert.equal([events.invocations, events.errors], [6, 5]);
    assert.equal(s.broker!.deadLetters, [{ topic: 'user.created', count: 1 }]);
    assert.equal(
      s.broker!.topics.map((t) => [t.topic, t.group, t.waiting]),
      [['user.created', 'events', 0]],
    );
  },
);

log("prints the function's own output as JSON lines, and serve's messages too", async () => {
  await eventually(
    () =>
      printed().some((o) => o.type === 'output' && o.function === 'events' && /user 1 created/.test(String(o.message))),
    5000,
    'the output line of events',
  );
  // The failed subscriber's error, said by the function before its message is retried (5 attempts, 5 lines).
  const failures = printed().filter(
    (o) =>
      o.type === 'output' && o.function === 'events' && /subscriber of user\.created failed/.test(String(o.message)),
  );
  assert.is(failures.length, 5, `failed-subscriber lines: ${failures.length} of 5`);
  assert.match(String(failures[0]!.message), /\(attempt 1\): user\.created needs a numeric id .*"code":400/);
  assert.ok(/\{"type":"serve".*listening on/.test(serve.stderr()), serve.stderr());
  for (const line of serve
    .stderr()
    .split('\n')
    .filter((l) => l !== ''))
    JSON.parse(line);
});

log(
  'micro-fn ps prints a table: a row per function (warm out of its pool target), the topic with its dead letter',
  async () => {
    const r = await ok(['ps']);
    const rows = r.stdout.split('\n');
    assert.match(
      rows[0]!,
      /^FUNCTION\s+WARM\/TARGET\s+STARTING\s+RUNNING\s+QUEUED\s+CALLS\s+ERRORS\s+COLD\s+NOT STARTED\s+P50 5m\s+P99 5m$/,
    );
    assert.match(
      rows.find((l) => l.startsWith('helloworld'))!,
      /^helloworld\s+\d\/\d\s+\d\s+0\s+0\s+4\s+1\s+3\s+0\s+\S+ms\s+\S+ms$/,
    );
    assert.match(
      rows.find((l) => l.startsWith('user.created'))!,
      /^user\.created\s+events\s+0\s+0\s+1$/,
    );
  },
);

log(
  'micro-fn logs: every function in time order, -n, --since, --json; a deployed function with no lines is no error',
  async () => {
    const all = (await ok(['logs'])).stdout.trim().split('\n');
    assert.ok(
      all.some((l) => / events /.test(l)) && all.every((l) => /^\d{4}-\d\d-\d\dT\S+Z \S+ /.test(l)),
      all.join('\n'),
    );
    const times = all.map((l) => l.slice(0, 24));
    assert.equal(times, [...times].sort(), 'in time order');
    const last = JSON.parse((await ok(['logs', 'events', '-n', '1', '--json'])).stdout) as Record<string, unknown>;
    assert.equal(Object.keys(last), ['time', 'function', 'invocation', 'stream', 'message']);
    assert.is((await ok(['logs', '--since', '2099-01-01T00:00:00Z'])).stdout, '');
    // helloworld (its handler prints nothing) has written no line: not an error.
    const quiet = await ok(['logs', 'helloworld']);
    assert.match(quiet.stderr, /helloworld has written nothing yet/);
    const missing = await cli(['logs', 'nosuchfn'], env);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /no logs for nosuchfn: it is not deployed/);
  },
);

log.run();
