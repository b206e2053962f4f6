import { registryOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { withSession } from './plugins.js';

export const command = defineCommand({
  name: 'services',
  summary: 'list the services in the registry',
  usage: '',
  options: { ...registryOptions },
  examples: ['micro-fn services', 'micro-fn services --json'],
  async run({ values }) {
    return withSession(values, async ({ plugins }) => {
      const services = (await plugins.registry.listServices()).sort(
        (a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version),
      );
      if (values.json) {
        await write(process.stdout, `${JSON.stringify(services)}\n`);
      } else {
        const lines = services.map(
          (s) => `${s.name}\t${s.version}\t${s.nodes.length} node${s.nodes.length === 1 ? '' : 's'}`,
        );
        await write(process.stdout, lines.length ? `${lines.join('\n')}\n` : '');
        if (!lines.length) process.stderr.write('no services registered\n');
      }
      return 0;
    });
  },
});
