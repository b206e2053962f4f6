import { UserError } from '../runtime/core/errors.js';
import { pluginOptions, defineCommand } from './command.js';
import { callRuntime, runtimeOption, withSession } from './plugins.js';
import { nameArgument } from '../runtime/plugins/local/limits.js';

export const command = defineCommand({
  name: 'remove',
  summary: 'stop and deregister a function deployed to micro-fn serve',
  usage: '<name>',
  options: { ...runtimeOption, ...pluginOptions },
  examples: ['micro-fn remove helloworld'],
  async run({ positionals, values }) {
    const [name] = positionals;
    if (!name) throw new UserError('remove needs a function name: micro-fn remove <name>');
    nameArgument('function', name);
    return withSession(values, async (session) => {
      await callRuntime(session, 'Runtime.Remove', { name }, { runtime: values.runtime });
      process.stderr.write(`removed ${name}\n`);
      return 0;
    });
  },
});
