import { UserError } from '../runtime/core/errors.js';
import { jsonArgument, metadataFlags, pluginOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { withSession } from './plugins.js';
import { nameArgument } from '../runtime/plugins/local/limits.js';

export const command = defineCommand({
  name: 'publish',
  summary: 'publish a JSON message on a topic',
  usage: '<topic> [json]',
  description:
    'Publishes the json message ("-" reads stdin; absent means {}) on <topic> through the configured broker.',
  options: {
    metadata: {
      type: 'string',
      short: 'm',
      value: 'KEY=VALUE',
      multiple: true,
      description: 'message headers (repeatable)',
    },
    ...pluginOptions,
  },
  examples: [`micro-fn publish user.created '{"id":1}'`],
  async run({ positionals, values }) {
    const [topic, data, extra] = positionals;
    if (!topic) throw new UserError('publish needs a topic: micro-fn publish <topic> [json]');
    nameArgument('topic', topic);
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}" (quote the JSON: '{"id":1}')`);
    const payload = jsonArgument(data, 'message');
    const metadata = metadataFlags(values.metadata);
    return withSession(values, async ({ client }) => {
      await client.publish(topic, payload, { metadata });
      if (values.json) await write(process.stdout, `${JSON.stringify({ published: true, topic })}\n`);
      else process.stderr.write(`published on ${topic}\n`);
      return 0;
    });
  },
});
