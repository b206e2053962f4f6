import { basename } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { LogSink, parseLogLine } from '../serve/logs.js';
import { duration, envWithFlags, defineCommand, pluginOptions } from './command.js';
import { write } from './output.js';
import { nameArgument } from '../runtime/plugins/local/limits.js';
import { LogTail, logFiles, type Entry } from './log-tail.js';
import { withSession } from './plugins.js';

export const command = defineCommand({
  name: 'logs',
  summary: "print functions' output, tagged with invocation ids",
  usage: '[function]',
  description: [
    'Prints what the processes of <function> wrote (kept by `micro-fn serve` under MICRO_FN_HOME/logs, rotated by',
    "size: serve --log-size, --log-files), oldest first; with no function, every function's lines in time order.",
    'Each line: time, function, invocation id, stream, text. --follow keeps printing, across serve restarts and',
    'log rotation.',
  ].join('\n'),
  options: {
    follow: { type: 'boolean', short: 'f', description: 'keep printing new lines until interrupted' },
    since: {
      type: 'string',
      value: 'WHEN',
      description: 'only lines written since a duration ago (10m, 2h) or a time (2024-05-01T12:00:00Z)',
    },
    lines: { type: 'string', short: 'n', value: 'N', description: 'only the last N lines (then new ones with -f)' },
    ...pluginOptions,
  },
  examples: ['micro-fn logs helloworld', 'micro-fn logs -f', 'micro-fn logs events --since 10m -n 50 --json'],
  async run({ positionals, values }) {
    const [name] = positionals;
    if (name !== undefined) nameArgument('function', name);
    const since = sinceArgument(values.since);
    const last = values.lines === undefined ? undefined : count(values.lines);
    const env = envWithFlags(values);
    const home = microFnHome(env);
    const json = values.json === true;
    const show = (entries: Entry[]) =>
      entries.length === 0
        ? Promise.resolve()
        : write(
            process.stdout,
            entries
              .map((e) => `${json ? JSON.stringify(parseLogLine(e.text) ?? { message: e.text }) : e.text}\n`)
              .join(''),
          );
    const keep = (e: Entry) => since === undefined || e.text.slice(0, 24) >= since;
    const tail = new LogTail(LogSink.folder(home), name === undefined ? undefined : LogSink.file(home, name));
    let history = tail.history().filter(keep);
    if (last !== undefined) history = history.slice(Math.max(0, history.length - last));
    if (name !== undefined && !values.follow && logFiles(LogSink.file(home, name)).length === 0) {
      // A deployed function that has written nothing yet is not an error.
      const deployed = await withSession(values, async (s) => (await s.plugins.registry.getService(name)).length > 0);
      if (!deployed)
        throw new UserError(`no logs for ${name}: it is not deployed to micro-fn serve (micro-fn ps lists what is)`);
      process.stderr.write(`${name} has written nothing yet\n`);
      return 0;
    }
    await show(history);
    if (!values.follow) return 0;
    let stop = false;
    process.once('SIGINT', () => (stop = true)).once('SIGTERM', () => (stop = true));
    while (!stop) {
      await new Promise((r) => setTimeout(r, 200));
      const lines = tail.poll().filter(keep);
      // Said before the lines read after the gap.
      for (const away of tail.rotatedAway()) {
        const name = basename(away.path, '.log');
        process.stderr.write(
          json
            ? `${JSON.stringify({ type: 'rotated-away', function: name, files: away.files })}\n`
            : `micro-fn logs: lines of ${name} were rotated away before they were read (${away.files} file${away.files === 1 ? '' : 's'} of serve --log-size; serve --log-files keeps more)\n`,
        );
      }
      await show(lines);
    }
    tail.close();
    return 0;
  },
});

/** `--since`: a duration ago or a time, as the ISO 8601 text lines start with (they compare as text). */
function sinceArgument(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const ago = /^\d+(\.\d+)?(ms|s|m|h)$/.test(value.trim()) ? duration(value, 'since') : undefined;
  const at = ago !== undefined ? Date.now() - ago : Date.parse(value);
  if (!Number.isFinite(at))
    throw new UserError(`--since takes a duration like 10m or 2h, or a time like 2024-05-01T12:00:00Z; got "${value}"`);
  return new Date(at).toISOString();
}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UserError(`-n takes a whole number of lines; got "${value}"`);
  return n;
}
