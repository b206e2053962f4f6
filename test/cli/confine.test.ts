/**
 * Attacks on a real `micro-fn serve` from the functions it runs (serve/launcher.ts): reading serve's or a
 * sibling's environment through /proc, starting processes that outlive the invocation, running as root, taking
 * memory as the module loads, and declaring NODE_OPTIONS to run code before the function is confined.
 */
import { CreateFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, lastJson, start, type Running } from './helpers.js';
import { eventually, sleep, withTimeout } from '../helpers.js';
import { buildPackage, ricAvailable, type Package } from '../adapters/lambda/helpers.js';

const SECRET = 'secret-xyz-7f3a9c';
const API_KEY = 'key-abc-51d2e8';

let base: string;
let home: string;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
  const res = await withTimeout(
    fetch(`${gateway}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    }),
    30_000,
    `POST ${path}`,
  );
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** serve's credential (MICRO_FN_HOME/auth/credential.json), for requests made without the CLI. */
function credential(): { control?: string; aws?: { accessKeyId: string; secretAccessKey: string } } {
  const file = join(home, 'auth', 'credential.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
}

/** A deployed function's pool figures (Runtime.List). */
async function stats(name: string): Promise<{ warm: number; starting: number } | undefined> {
  const control = credential().control;
  const { json } = await post('/micro-fn/Runtime.List', {}, control ? { authorization: `Bearer ${control}` } : {});
  const functions = json.functions as { name: string; stats: { warm: number; starting: number } }[];
  return functions.find((f) => f.name === name)?.stats;
}

const residentMiB = (pid: number) => (Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096) >> 20;

// ---
const confine = suite('micro-fn serve: confined functions');

confine.before(async () => {
  base = mkdtempSync(join(tmpdir(), 'micro-fn-confine-'));
  chmodSync(base, 0o755); // the functions' user reads the marker folders below it
  home = join(base, 'home'); // made by serve
  // serve holds a secret in its own environment, as a developer's shell often does.
  env = { MICRO_FN_HOME: home, AWS_SECRET_ACCESS_KEY: SECRET };
  serve = start(['serve', '--address', '127.0.0.1:0'], env);
  gateway = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
});

confine.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(15_000).catch(() => serve.kill());
  rmSync(base, { recursive: true, force: true });
});

confine(
  "a function finds neither serve's secret nor a sibling's declared API_KEY in any /proc/<pid>/environ it can read",
  async () => {
    await ok(['deploy', 'test/fixtures/keeper', '--env', `API_KEY=${API_KEY}`, '--pool', '1']);
    // The sibling has its key, from the first line of its module on.
    assert.equal((await post('/keeper/Keeper.Key', {})).json, { atLoad: API_KEY, now: API_KEY });
    await ok(['deploy', 'test/fixtures/spy']);
    const { json } = await post('/spy/Spy.Look', { needles: [SECRET, API_KEY] });
    const { found, readable, tried, parentReadable } = json as {
      found: string[];
      readable: number;
      tried: number;
      parentReadable: boolean;
    };
    assert.ok(tried > 10, `${tried} processes to look at`);
    assert.equal(found, [], `found in ${found.length} of ${readable} readable environ files (of ${tried})`);
    assert.not.ok(parentReadable && process.getuid?.() === 0, "its parent's environ is closed to it");
  },
);

confine('a function started as root by serve runs as an unprivileged user', async () => {
  const { json } = await post('/spy/Spy.Look', { needles: [] });
  if (process.getuid?.() === 0) assert.is.not(json.uid, 0, `uid ${json.uid}`);
  else assert.is(json.uid, process.getuid?.(), "serve's own user when serve is not root");
});

confine(
  'ends every process a function starts when its invocation ends: 0 of 3 (attached, detached, setsid orphan without environment) alive',
  async () => {
    await ok(['deploy', 'test/fixtures/forker']);
    const { status, json } = await post('/forker/Forker.Fork', {});
    assert.is(status, 200, JSON.stringify(json));
    const pids = json.pids as number[];
    assert.is(pids.filter((p) => Number.isInteger(p) && p > 0).length, 3, `pids ${pids.join(', ')}`);
    try {
      await eventually(() => pids.every((p) => !alive(p)), 5000, 'every process it started to be gone', 50);
    } catch {
      assert.unreachable(`${pids.filter(alive).length} of 3 still alive: ${pids.filter(alive).join(', ')}`);
    }
  },
);

confine(
  'a process over its memory limit as it loads never answers: 1 GiB under --memory 256 fails the deploy (400) and the call (500), naming memory',
  async () => {
    const dir = join(base, 'hog');
    mkdirSync(dir, { mode: 0o755 });
    // Deployed small; then every process loaded after it is armed takes 1 GiB.
    await ok(['deploy', 'test/fixtures/hog', '--env', `HOG_DIR=${dir}`, '--memory', '256', '--pool', '1']);
    const before = residentMiB(serve.child.pid!);
    writeFileSync(join(dir, 'armed'), '');
    // The warm process loaded before: it answers. Its replacement loads 1 GiB: it must never get the next call.
    assert.equal((await post('/hog/Hog.Size', {})).json, { mib: 0 });
    let replacing = false; // its replacement starts once the used process has exited; then it loads (or is stopped)
    const loaded = async () =>
      (replacing ||= (await stats('hog'))!.starting > 0) && (await stats('hog'))!.starting === 0;
    await eventually(loaded, 20_000, 'the replacement to have loaded', 25);
    const call = await post('/hog/Hog.Size', {});
    assert.is(call.status, 500, JSON.stringify(call.json));
    assert.match(String(call.json.detail), /memory limit/);
    const args = ['deploy', 'test/fixtures/hog', '--env', `HOG_DIR=${dir}`, '--memory', '256', '--json'];
    const deploy = await cli(args, env, { timeout: 60_000 });
    assert.is(deploy.code, 1);
    const error = lastJson(deploy.stderr) as { code: number; detail: string };
    assert.is(error.code, 400, deploy.stderr);
    assert.match(error.detail, /memory limit of 256 MiB/);
    const after = residentMiB(serve.child.pid!);
    assert.ok(after - before < 100, `serve's RSS went from ${before} to ${after} MiB`);
  },
);

confine(
  'refuses NODE_OPTIONS in a function env at the CLI, at Runtime.Deploy and in the Lambda API (3 routes, 400 naming it), and its import never runs',
  async () => {
    const marker = join(base, 'pwned');
    const options = `--import=data:text/javascript,import%20fs%20from'node:fs';fs.writeFileSync('${marker}','1')`;
    // 1. The CLI, before it builds anything.
    const viaCli = await cli(['deploy', 'examples/helloworld', '--env', `NODE_OPTIONS=${options}`], env);
    assert.is(viaCli.code, 1);
    assert.match(viaCli.stderr, /NODE_OPTIONS/);
    assert.not.match(viaCli.stderr, /built /);
    // 2. serve's control service, with a bundle serve already runs.
    const bundle = (JSON.parse((await ok(['deploy', 'examples/helloworld', '--json'])).stdout) as { bundle: string })
      .bundle;
    const control = credential().control;
    const direct = await post(
      '/micro-fn/Runtime.Deploy',
      { bundle, env: { NODE_OPTIONS: options } },
      control ? { authorization: `Bearer ${control}` } : {},
    );
    assert.is(direct.status, 400, JSON.stringify(direct.json));
    assert.match(String(direct.json.detail), /NODE_OPTIONS/);
    // 3. The local Lambda API.
    if (ricAvailable()) {
      const pkg: Package = await buildPackage('test/fixtures/lambda/index.ts');
      const aws = credential().aws ?? { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' };
      const lambda = new LambdaClient({ endpoint: gateway, region: 'us-east-1', credentials: aws, maxAttempts: 1 });
      try {
        const refused = await lambda
          .send(
            new CreateFunctionCommand({
              FunctionName: 'optioned',
              Runtime: 'nodejs22.x',
              Handler: 'index.handler',
              Role: 'arn:aws:iam::000000000000:role/test',
              Code: { ZipFile: new Uint8Array(readFileSync(pkg.zip)) },
              Environment: { Variables: { NODE_OPTIONS: options } },
            }),
          )
          .then(
            () => undefined,
            (err: Error & { $metadata?: { httpStatusCode?: number } }) => err,
          );
        assert.is(refused?.name, 'InvalidParameterValueException', String(refused));
        assert.is(refused?.$metadata?.httpStatusCode, 400);
        assert.match(refused!.message, /NODE_OPTIONS/);
      } finally {
        lambda.destroy();
        pkg.cleanup();
      }
    }
    await sleep(1500); // what a started process would have had to write it
    assert.not.ok(existsSync(marker), 'the import in NODE_OPTIONS ran');
  },
);

confine('MICRO_FN_HOME is made 0700 by serve, and the credential in it is 0600', async () => {
  const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);
  assert.is(mode(home), '700');
  const file = join(home, 'auth', 'credential.json');
  if (existsSync(file)) assert.is(mode(file), '600');
});

confine.run();
