// Lambda execution environments are function processes too: started through the launcher (serve/launcher.ts), as
// the function user when serve is root, their variables out of /proc/<pid>/environ, their processes ended with them.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LambdaEnvironment } from '../../../serve/lambda/environment.js';
import { Launcher } from '../../../serve/launcher.js';
import { functionUser } from '../../../serve/function-user.js';
import type { InvokeResult } from '../../../serve/lambda/runtime-api.js';
import { eventually, withTimeout } from '../../helpers.js';
import { buildPackage, runWithRic, type Package } from '../../adapters/lambda/helpers.js';

const API_KEY = 'lambda-key-93be01';

function body<T>(result: InvokeResult): T {
  if ('error' in result) throw new Error(`the invocation failed: ${JSON.stringify(result.error)}`);
  return (JSON.parse(result.payload) as { body: T }).body;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// ---
const confined = suite('LambdaEnvironment: confined');
let launcher: Launcher;
let spy: Package;
let forker: Package;
const environments: LambdaEnvironment[] = [];

confined.before(async () => {
  // As serve does: as root, the environments run as `nobody`; their task roots (0700 folders here) are staged.
  launcher = new Launcher({ user: functionUser() });
  await launcher.start();
  [spy, forker] = await Promise.all([
    buildPackage('test/fixtures/spy/index.ts'),
    buildPackage('test/fixtures/forker/index.ts'),
  ]);
});

confined.after(async () => {
  await Promise.all(environments.map((e) => e.close()));
  await launcher.close();
  spy?.cleanup();
  forker?.cleanup();
});

const start = async (pkg: Package, name: string, env: Record<string, string> = {}) => {
  const started = await LambdaEnvironment.start({ taskRoot: pkg.taskRoot, functionName: name, env, launcher });
  environments.push(started);
  return started;
};

confined(
  "an environment reads no sibling environment's variable in any /proc/<pid>/environ, and runs unprivileged under a root serve",
  async () => {
    const holder = await start(spy, 'holder', { API_KEY });
    await withTimeout(holder.initialized, 20_000, 'the holder to start');
    const looker = await start(spy, 'looker');
    const seen = body<{ uid: number; found: string[]; readable: number; tried: number }>(
      await withTimeout(looker.invoke({ endpoint: 'Spy.Look', body: { needles: [API_KEY] } }), 20_000, 'Spy.Look'),
    );
    assert.equal(seen.found, [], `found in ${seen.found.length} of ${seen.readable} readable (of ${seen.tried})`);
    if (process.getuid?.() === 0) assert.is.not(seen.uid, 0);
  },
);

confined('ends the processes a function started when its environment ends: 0 of 3 alive', async () => {
  const env = await start(forker, 'forker');
  const { pids } = body<{ pids: number[] }>(
    await withTimeout(env.invoke({ endpoint: 'Forker.Fork', body: {} }), 20_000, 'Forker.Fork'),
  );
  assert.is(pids.filter((p) => p > 0).length, 3, `pids ${pids.join(', ')}`);
  await env.close();
  await eventually(() => pids.every((p) => !alive(p)), 5000, `0 of 3 alive (${pids.filter(alive).join(', ')})`);
});

runWithRic(confined);
