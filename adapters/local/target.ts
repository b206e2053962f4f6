/** The local target, declared once: its build, its deploy to `micro-fn serve` and their options. Build-time only. */
import { relative } from 'node:path';
import { duration, whole } from '../kit/options.js';
import { defineTarget } from '../kit/target.js';
import { UserError } from '../../runtime/core/errors.js';
import { refusedEnvProblem } from '../../runtime/plugins/local/refused-env.js';
import { limitArgument } from '../../runtime/plugins/local/limits.js';

export const target = defineTarget({
  name: 'local',
  summary: 'this machine: micro-fn serve runs every invocation in a fresh single-use process, with a warm pool',
  platform: 'node',
  description: [
    'Builds it and deploys it to the `micro-fn serve` found through the registry: the function is registered with',
    'the gateway as its address, its topics trigger it, and a redeploy swaps the version without failing',
    'invocations in flight. Its processes get only the --env it declares plus MICRO_*.',
  ],
  options: {
    pool: { type: 'string', value: 'N', description: "warm processes (default: serve's --pool)" },
    timeout: { type: 'string', value: 'DURATION', description: "per invocation (default: serve's --timeout)" },
    memory: {
      type: 'string',
      value: 'MIB',
      description: "resident memory limit per process (default: serve's --memory)",
    },
    concurrency: { type: 'string', value: 'N', description: "invocations at once (default: serve's --concurrency)" },
    queue: { type: 'string', value: 'N', description: "invocations waiting before 429 (default: serve's --queue)" },
    runtime: {
      type: 'string',
      value: 'URL',
      description: 'the micro-fn serve to deploy to, when the registry holds several',
    },
  },
  examples: ['micro-fn deploy examples/helloworld --target local', 'micro-fn deploy examples/events --env SLACK_URL'],
  async build({ entry, outdir, minify }) {
    const { buildLocal } = await import('./build.js');
    return buildLocal(entry, { outdir, minify, warmCache: true });
  },
  async deploy({ entry, env, hostEnv, options, session, progress }) {
    // Before building: serve would refuse them anyway (runtime/plugins/local/refused-env.ts).
    const refused = refusedEnvProblem(env);
    if (refused) throw new UserError(`--env: ${refused}`);
    // Checked here by the ranges serve checks them with (limits.ts), so a mistake is one line before any build.
    const limits = {
      pool: limitArgument('pool', whole(options.pool, 'pool', 0)),
      memory: limitArgument('memory', whole(options.memory, 'memory', 16)),
      concurrency: limitArgument('concurrency', whole(options.concurrency, 'concurrency', 1)),
      queue: limitArgument('queue', whole(options.queue, 'queue', 0)),
      timeout: limitArgument('timeout', duration(options.timeout, 'timeout')),
    };
    const { registry, client } = await session();
    const { deployLocal } = await import('./deploy.js');
    const started = Date.now();
    const info = await deployLocal({
      entry,
      env,
      ...limits,
      hostEnv,
      registry,
      client,
      runtime: options.runtime,
      onProgress: (line) => progress(line.replace(entry, relative(process.cwd(), entry) || entry)),
    });
    const what = [...info.endpoints, ...info.topics.map((t) => `topic ${t}`)].join(', ');
    return {
      name: info.name,
      address: info.address,
      summary: `deployed ${info.name} (${what}) at ${info.address} in ${Date.now() - started} ms`,
      details: { ...info },
    };
  },
  removeOptions: {
    runtime: {
      type: 'string',
      value: 'URL',
      description: 'the micro-fn serve to remove it from, when the registry holds several',
    },
  },
  async remove({ name, hostEnv, options, session }) {
    const { registry, client } = await session();
    const { removeLocal } = await import('./deploy.js');
    const result = await removeLocal({ name, hostEnv, registry, client, runtime: options.runtime });
    return { summary: `removed ${name}`, details: result };
  },
});
