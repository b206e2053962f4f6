import { join } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { buildLocal, resolveEntry } from '../adapters/local/build.js';
import type { FunctionInfo } from '../adapters/local/spawner/control.js';
import { duration, pluginOptions, type Command } from './command.js';
import { dim, write } from './output.js';
import { callRuntime, runtimeOption, withSession } from './plugins.js';

export const command: Command = {
  name: 'deploy',
  summary: 'build a function and hand it to the running micro-fn serve',
  usage: '<entry>',
  description: [
    'Builds <entry> and deploys it to the `micro-fn serve` found through the registry: the function is',
    'registered with the gateway as its address, its topics trigger it, and a redeploy swaps the version',
    'without failing invocations in flight. Its processes get only the --env it declares plus MICRO_*.',
  ].join('\n'),
  options: {
    target: { type: 'string', value: 'TARGET', description: 'where to deploy: local (default)' },
    env: { type: 'string', short: 'e', value: 'KEY=VALUE', multiple: true, description: 'environment of the function (KEY alone passes the current value)' },
    pool: { type: 'string', value: 'N', description: "warm processes (default: serve's --pool)" },
    timeout: { type: 'string', value: 'DURATION', description: "per invocation (default: serve's --timeout)" },
    memory: { type: 'string', value: 'MIB', description: "resident memory limit per process (default: serve's --memory)" },
    concurrency: { type: 'string', value: 'N', description: "invocations at once (default: serve's --concurrency)" },
    queue: { type: 'string', value: 'N', description: "invocations waiting before 429 (default: serve's --queue)" },
    ...runtimeOption,
    ...pluginOptions,
  },
  examples: ['micro-fn deploy examples/helloworld --target local', 'micro-fn deploy examples/events --env SLACK_URL'],
  async run({ positionals, values }) {
    const [entry, extra] = positionals;
    if (!entry) throw new UserError('deploy needs an entry: micro-fn deploy <entry> --target local');
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}"`);
    const target = (values.target as string | undefined) ?? 'local';
    if (target !== 'local') throw new UserError(`--target ${target} is not available; targets: local`);
    const file = resolveEntry(entry);
    const env = Object.fromEntries(((values.env as string[] | undefined) ?? []).map(envPair));
    const pool = whole(values.pool, 'pool', 0);
    const memory = whole(values.memory, 'memory', 16);
    const concurrency = whole(values.concurrency, 'concurrency', 1);
    const queue = whole(values.queue, 'queue', 0);
    const timeout = duration(values.timeout as string | undefined, 'timeout');
    const json = values.json === true;

    return withSession(values, async (session) => {
      const outdir = join(microFnHome(session.env), 'functions', `${Date.now().toString(36)}-${process.pid}`);
      const built = await buildLocal(file, { outdir });
      if (!json) process.stderr.write(`built ${entry} ${dim(`(${kib(built.size)} in ${built.ms} ms)`)}\n`);
      const started = Date.now();
      const info = await callRuntime<FunctionInfo>(session, 'Runtime.Deploy', { bundle: built.file, entry: file, env, pool, timeout, memory, concurrency, queue }, { runtime: values.runtime as string | undefined, timeout: 120_000 });
      if (json) await write(process.stdout, `${JSON.stringify(info)}\n`);
      else {
        const what = [...info.endpoints, ...info.topics.map((t) => `topic ${t}`)].join(', ');
        process.stderr.write(`deployed ${info.name} ${dim(`(${what}) at ${info.address} in ${Date.now() - started} ms`)}\n`);
      }
      return 0;
    });
  },
};

function whole(value: unknown, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UserError(`--${flag} takes a whole number of at least ${min}; got "${value}"`);
  return n;
}

function envPair(text: string): [string, string] {
  const i = text.indexOf('=');
  if (i === 0) throw new UserError(`--env takes KEY=VALUE or KEY; got "${text}"`);
  if (i > 0) return [text.slice(0, i), text.slice(i + 1)];
  const value = process.env[text];
  if (value === undefined) throw new UserError(`--env ${text}: ${text} is not set here; give it a value with --env ${text}=VALUE`);
  return [text, value];
}

export const kib = (bytes: number) => (bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`);
