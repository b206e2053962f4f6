import { UserError } from '../runtime/core/errors.js';
import { registryOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { withSession } from './plugins.js';

export const command = defineCommand({
  name: 'describe',
  summary: 'show a service as the registry has it: versions, endpoints, nodes',
  usage: '<service>',
  options: { ...registryOptions },
  examples: ['micro-fn describe helloworld'],
  async run({ positionals, values }) {
    const [name, extra] = positionals;
    if (!name) throw new UserError('describe needs a service name: micro-fn describe <service>');
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}": micro-fn describe <service>`);
    return withSession(values, async ({ plugins }) => {
      const versions = await plugins.registry.getService(name);
      if (versions.length === 0) throw new UserError(`service ${name} not found`);
      await write(process.stdout, `${JSON.stringify(versions, null, values.json ? undefined : 2)}\n`);
      return 0;
    });
  },
});
