/** `micro-fn remove`: takes a deployed function away with the target `--target` names (adapters/targets.ts). */
import { UserError } from '../runtime/core/errors.js';
import { removeOptionValues, type Target } from '../adapters/kit/target.js';
import { allTargets, loadTarget, targets } from '../adapters/targets.js';
import { nameArgument } from '../runtime/plugins/local/limits.js';
import { commonOptions, envWithFlags, pluginOptions, type OptionSection, defineCommand } from './command.js';
import { dim, write } from './output.js';
import { lazyDeploySession } from './plugins.js';

const TARGET = 'local';

export const command = defineCommand({
  name: 'remove',
  summary: 'take a deployed function away where it runs, and out of the registry',
  usage: '<name>',
  description: [
    `Removes the function <name> from --target (${Object.keys(targets).join(', ')}; default ${TARGET}): it stops`,
    'running there and its registry entries go, so nothing lists or calls it any more. For deno, whose deploy uploads',
    'nothing, remove takes its registry entry away; stop what serves it yourself.',
  ].join('\n'),
  options: {
    target: {
      type: 'string',
      value: 'TARGET',
      description: `where it was deployed: ${Object.keys(targets).join(', ')} (default ${TARGET})`,
    },
    ...pluginOptions,
  },
  async sections(): Promise<OptionSection[]> {
    return (await allTargets())
      .filter((t) => Object.keys(t.removeOptions).length > 0)
      .map((t) => ({ title: `--target ${t.name}`, options: t.removeOptions }));
  },
  examples: [
    'micro-fn remove helloworld',
    'micro-fn remove helloworld --target lambda',
    'micro-fn remove helloworld --target cloudflare',
  ],
  async run({ positionals, values }) {
    const [name, extra] = positionals;
    if (!name) throw new UserError('remove needs a function name: micro-fn remove <name>');
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}"`);
    nameArgument('function', name);
    const target = await loadTarget(values.target ?? TARGET);
    await refuseOthers(target, values);
    const hostEnv = envWithFlags(values);
    const json = values.json === true;
    const { session, close } = lazyDeploySession(hostEnv);
    try {
      const result = await target.remove({
        name,
        hostEnv,
        options: removeOptionValues(target, values),
        session,
        progress: json ? () => {} : (line) => process.stderr.write(`${dim(line)}\n`),
      });
      if (json) await write(process.stdout, `${JSON.stringify(result.details)}\n`);
      else process.stderr.write(`${result.summary}\n`);
      return 0;
    } finally {
      await close();
    }
  },
});

/** A flag that belongs only to other targets' remove is a mistake: say whose it is. */
async function refuseOthers(target: Target, values: Readonly<Record<string, unknown>>): Promise<void> {
  const own = new Set([
    ...Object.keys(target.removeOptions),
    ...Object.keys(command.options),
    ...Object.keys(commonOptions),
  ]);
  const given = Object.keys(values).filter((name) => values[name] !== undefined && !own.has(name));
  if (given.length === 0) return;
  const owners = (await allTargets()).filter((t) => given[0]! in t.removeOptions).map((t) => t.name);
  throw new UserError(
    `--${given[0]} is not an option of remove --target ${target.name}; it is for --target ${owners.join(' or ')}`,
  );
}
