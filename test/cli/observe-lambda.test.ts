/**
 * The local Lambda API's invocations in serve's request log and stats: a real `micro-fn serve --json`, a function
 * deployed with `--target lambda` to it, run under the official runtime interface client.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, dummyAws, type Running, start, tempHome } from './helpers.js';
import { eventually } from '../helpers.js';
import { ricAvailable } from '../adapters/lambda/helpers.js';
import type { RuntimeStats } from '../../runtime/plugins/local/protocol.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const invocations = () =>
  serve
    .stdout()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((o) => o.type === 'invocation' && o.function === 'helloworld');

// ---
const lambda = suite('micro-fn serve --json: Lambda functions in the request log and stats');

lambda.before(async () => {
  scratch = tempHome();
  env = {
    MICRO_FN_HOME: scratch.home,
    ...dummyAws,
  };
  serve = start(['serve', '--address', '127.0.0.1:0', '--json'], env);
  const [, gateway] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  await ok(['deploy', 'examples/helloworld', '--target', 'lambda', '--endpoint', gateway!]);
});

lambda.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(15_000).catch(() => serve.kill());
  scratch.cleanup();
});

lambda(
  'prints a line per Lambda invocation (kind lambda, its endpoint, status, duration, request id) and counts 2 of 2',
  async () => {
    for (const name of ['Ada', 'Bo'])
      assert.is(
        (await ok(['call', 'helloworld', 'Greeter.Hello', JSON.stringify({ name })])).stdout,
        `{"message":"Hello ${name}"}\n`,
      );
    await eventually(() => invocations().length === 2, 10_000, 'two invocation lines');
    const lines = invocations();
    assert.equal(
      lines.map((l) => [l.kind, l.endpoint, l.status, l.ok, l.started]),
      [
        ['lambda', 'Greeter.Hello', 200, true, true],
        ['lambda', 'Greeter.Hello', 200, true, true],
      ],
    );
    for (const l of lines) {
      assert.ok(typeof l.ms === 'number' && l.ms > 0, `duration ${l.ms}`);
      assert.ok(typeof l.cold === 'boolean', 'cold or warm');
      assert.match(String(l.id), /^[0-9a-f-]{36}$/, 'the Lambda request id');
    }
    const stats = JSON.parse((await ok(['ps', '--json'])).stdout) as RuntimeStats;
    const hello = stats.functions.find((f) => f.name === 'helloworld');
    assert.ok(hello, JSON.stringify(stats.functions));
    assert.equal([hello!.kind, hello!.invocations, hello!.errors], ['lambda', 2, 0]);
  },
);

if (ricAvailable()) lambda.run();
