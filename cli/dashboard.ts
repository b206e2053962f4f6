import { spawn } from 'node:child_process';
import { UserError } from '../runtime/core/errors.js';
import { pluginOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { callRuntime, runtimeOption, withSession } from './plugins.js';

export const command = defineCommand({
  name: 'dashboard',
  summary: "a login link to micro-fn serve's dashboard [--open]",
  usage: '',
  description: [
    'Prints the address of the dashboard micro-fn serve hosts (serve --dashboard; by default the port after the',
    "gateway's, on 127.0.0.1) with a login token that works once, for a minute: opening it logs the browser in for 12",
    'hours. The page shows each function with its processes, counts and p50/p99, charts of rate, errors and p50/p99',
    'over the last 5 minutes, a live feed of invocations, logs, and dead letters with a Replay button.',
  ].join('\n'),
  options: {
    open: { type: 'boolean', description: 'open the link in the default browser (xdg-open, open)' },
    ...runtimeOption,
    ...pluginOptions,
  },
  examples: ['micro-fn dashboard', 'micro-fn dashboard --open'],
  async run({ positionals, values }) {
    if (positionals.length > 0)
      throw new UserError(`unexpected argument "${positionals[0]}": micro-fn dashboard [--open]`);
    return withSession(values, async (session) => {
      const login = await callRuntime(session, 'Dashboard.Login', {}, { runtime: values.runtime });
      await write(process.stdout, values.json ? `${JSON.stringify(login)}\n` : `${login.url}\n`);
      if (!values.json) process.stderr.write('the link works once, within a minute\n');
      if (values.open && !(await open(login.url)))
        process.stderr.write('could not open a browser (no xdg-open or open here): open the link above yourself\n');
      return 0;
    });
  },
});

/** Opens `url` with the system's opener; false when there is none (or it failed to start). */
function open(url: string): Promise<boolean> {
  const opener = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer.exe' : 'xdg-open';
  return new Promise((resolve) => {
    const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}
