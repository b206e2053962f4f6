import { open, stat } from 'node:fs/promises';
import { UserError } from '../runtime/core/errors.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { LogSink } from '../serve/logs.js';
import { envWithFlags, defineCommand } from './command.js';
import { write } from './output.js';
import { nameArgument } from '../runtime/plugins/local/limits.js';

export const command = defineCommand({
  name: 'logs',
  summary: "print a function's output, tagged with invocation ids",
  usage: '<function>',
  description:
    'Prints what the processes of <function> wrote (kept by `micro-fn serve` under MICRO_FN_HOME/logs). --follow keeps printing.',
  options: {
    follow: { type: 'boolean', short: 'f', description: 'keep printing new lines until interrupted' },
  },
  examples: ['micro-fn logs helloworld', 'micro-fn logs events --follow'],
  async run({ positionals, values }) {
    const [name] = positionals;
    if (!name) throw new UserError('logs needs a function name: micro-fn logs <function>');
    nameArgument('function', name);
    const file = LogSink.file(microFnHome(envWithFlags(values)), name);
    let offset = 0;
    const drain = async () => {
      const size = (await stat(file).catch(() => undefined))?.size ?? 0;
      if (size < offset) offset = 0; // the file was replaced
      if (size === offset) return;
      const handle = await open(file, 'r');
      try {
        const { buffer, bytesRead } = await handle.read(Buffer.alloc(size - offset), 0, size - offset, offset);
        offset += bytesRead;
        await write(process.stdout, buffer.subarray(0, bytesRead).toString('utf8'));
      } finally {
        await handle.close();
      }
    };
    const exists = await stat(file).then(
      () => true,
      () => false,
    );
    if (!exists && !values.follow) throw new UserError(`no logs for ${name} yet (is it deployed to micro-fn serve?)`);
    await drain();
    if (!values.follow) return 0;
    let stop = false;
    process.once('SIGINT', () => (stop = true)).once('SIGTERM', () => (stop = true));
    while (!stop) {
      await new Promise((r) => setTimeout(r, 200));
      await drain();
    }
    return 0;
  },
});
