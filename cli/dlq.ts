import { UserError } from '../runtime/core/errors.js';
import { registryOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { callRuntime, runtimeOption, withSession } from './plugins.js';
import { nameArgument } from '../runtime/plugins/local/limits.js';

export const command = defineCommand({
  name: 'dlq',
  summary: 'list the dead-lettered messages of a topic, or replay them',
  usage: '<topic>',
  description:
    'A message whose handler failed on every attempt is dead-lettered. This lists them, each with the error of every failed attempt (code, detail, time); --replay hands them back to <topic> for another round of attempts.',
  options: {
    replay: { type: 'boolean', description: 'publish every dead letter of the topic again, and clear them' },
    ...runtimeOption,
    ...registryOptions,
  },
  examples: ['micro-fn dlq user.created', 'micro-fn dlq user.created --replay'],
  async run({ positionals, values }) {
    const [topic, extra] = positionals;
    if (!topic) throw new UserError('dlq needs a topic: micro-fn dlq <topic>');
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}": micro-fn dlq <topic> [--replay]`);
    nameArgument('topic', topic);
    return withSession(values, async (session) => {
      if (values.replay) {
        const { replayed } = await callRuntime(session, 'Dlq.Replay', { topic }, { runtime: values.runtime });
        if (values.json) await write(process.stdout, `${JSON.stringify({ replayed })}\n`);
        else process.stderr.write(`replayed ${replayed} message${replayed === 1 ? '' : 's'} on ${topic}\n`);
        return 0;
      }
      const { messages } = await callRuntime(session, 'Dlq.List', { topic }, { runtime: values.runtime });
      if (values.json) await write(process.stdout, `${JSON.stringify(messages)}\n`);
      else {
        // Each dead letter, then each failed attempt's error under it.
        const lines = messages.flatMap((m) => [
          `${m.at}  ${m.id}  ${m.headers['micro-dead-letter-reason'] ?? ''}  ${m.body}`,
          ...(m.attempts ?? []).map((a) => `  attempt ${a.attempt}  ${a.at}  ${a.code}  ${oneLine(a.detail)}`),
        ]);
        await write(process.stdout, lines.length ? `${lines.join('\n')}\n` : '');
        process.stderr.write(`${messages.length} dead letter${messages.length === 1 ? '' : 's'} on ${topic}\n`);
      }
      return 0;
    });
  },
});

/** A detail on one line: a handler's error may span several. */
const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ⏎ ');
