/**
 * The target contract on Deno: each function written as `micro-fn deploy --target deno --dry-run` writes it (the
 * module, deno.json) and served by Deno's own tooling, `deno task start`, on 127.0.0.1. Deno has no message source.
 */
import { join } from 'node:path';
import { deployDeno } from '../../../adapters/deno/deploy.js';
import { outputSettled, targetContract, type TargetFunction, type TargetHost } from '../../contracts/target.js';
import { withTimeout } from '../../helpers.js';
import { root, startDeno, tempDir, type DenoProcess } from './deno.js';

async function startDenoHost(functions: readonly TargetFunction[]): Promise<TargetHost> {
  const dirs = functions.map(() => tempDir());
  const served = new Map<string, DenoProcess>();
  const close = async () => {
    await Promise.allSettled([...served.values()].map((d) => d.stop()));
    for (const d of dirs) d.remove();
  };
  try {
    await Promise.all(
      functions.map(async ({ name, entry }, i) => {
        const { dir } = dirs[i]!;
        const writing = deployDeno({ entry: join(root, entry), name, outdir: dir, host: '127.0.0.1', port: 0 });
        await withTimeout(writing, 30_000, `writing ${name} for Deno`);
        served.set(name, await startDeno(['task', 'start'], { cwd: dir }));
      }),
    );
  } catch (err) {
    await close();
    throw err;
  }
  const of = (fn: string): DenoProcess => {
    const d = served.get(fn);
    if (!d) throw new Error(`no Deno server for ${fn}`);
    return d;
  };
  return {
    fetch: (fn, path, init) => withTimeout(fetch(`${of(fn).url}${path}`, init), 30_000, `deno: ${path}`),
    // `deno serve` evaluates the module, then listens: a server that said "Listening on" has it loaded.
    ready: (fn) => outputSettled(async () => of(fn).output()),
    output: async (fn) => of(fn).output(),
    close,
  };
}

const noMessages = '`deno serve` serves HTTP only: Deno has no queue';
targetContract('Deno (deno serve)', startDenoHost, { noMessages }).run();
