/** `micro-fn deploy`: builds a function and deploys it with the target `--target` names (adapters/targets.ts). */
import { UserError } from '../runtime/core/errors.js';
import { resolveEntry } from '../adapters/kit/entry.js';
import { envPairs } from '../adapters/kit/options.js';
import { optionValues, type Target } from '../adapters/kit/target.js';
import { allTargets, loadTarget, targets } from '../adapters/targets.js';
import { commonOptions, envWithFlags, pluginOptions, type OptionSection, defineCommand } from './command.js';
import { dim, write } from './output.js';
import { lazyDeploySession } from './plugins.js';

const TARGET = 'local';

export const command = defineCommand({
  name: 'deploy',
  summary: `build a function and deploy it: ${Object.keys(targets).join(', ')}`,
  usage: '<entry>',
  description: [
    `Builds <entry> and deploys it to --target (${Object.keys(targets).join(', ')}; default ${TARGET}), which`,
    'registers it where `micro-fn call` and other functions find it. Each target takes the options listed under it.',
  ].join('\n'),
  options: {
    target: {
      type: 'string',
      value: 'TARGET',
      description: `where to deploy: ${Object.keys(targets).join(', ')} (default ${TARGET})`,
    },
    env: {
      type: 'string',
      short: 'e',
      value: 'KEY=VALUE',
      multiple: true,
      description: 'environment of the function (KEY alone passes the current value)',
    },
    ...pluginOptions,
  },
  async sections(): Promise<OptionSection[]> {
    return (await allTargets()).map((t) => ({
      title: `--target ${t.name}`,
      description: t.description,
      options: t.options,
      examples: t.examples,
    }));
  },
  async run({ positionals, values }) {
    const [entry, extra] = positionals;
    if (!entry) throw new UserError('deploy needs an entry: micro-fn deploy <entry> --target local');
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}"`);
    const target = await loadTarget(values.target ?? TARGET);
    await refuseOthers(target, values);
    const file = resolveEntry(entry);
    const env = envPairs(values.env);
    const hostEnv = envWithFlags(values);
    const json = values.json === true;
    const { session, close } = lazyDeploySession(hostEnv);
    try {
      const options = optionValues(target, values);
      const result = await target.deploy({
        entry: file,
        env,
        hostEnv,
        options,
        session,
        progress: json ? () => {} : (line) => process.stderr.write(`${dim(line)}\n`),
      });
      if (json) await write(process.stdout, `${JSON.stringify(result.details)}\n`);
      else if (result.plan) await write(process.stdout, `${result.plan.join('\n')}\n`);
      else process.stderr.write(`${result.summary}\n`);
      return 0;
    } finally {
      await close();
    }
  },
});

/** A flag that belongs only to other targets is a mistake: say whose it is. */
async function refuseOthers(target: Target, values: Readonly<Record<string, unknown>>): Promise<void> {
  const own = new Set([...Object.keys(target.options), ...Object.keys(command.options), ...Object.keys(commonOptions)]);
  const given = Object.keys(values).filter((name) => values[name] !== undefined && !own.has(name));
  if (given.length === 0) return;
  const owners = (await allTargets()).filter((t) => given[0]! in t.options).map((t) => t.name);
  throw new UserError(
    `--${given[0]} is not an option of --target ${target.name}; it is for --target ${owners.join(' or ')}`,
  );
}
