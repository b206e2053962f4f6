/**
 * `micro-fn dev`: serve, deploy and watch in one command. It starts `micro-fn serve --watch` as a child process
 * sharing this terminal (its request log and the functions' output appear here), deploys every function of a
 * folder to it, and stops it on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { entryName, resolveEntry } from '../adapters/kit/entry.js';
import { loadTarget } from '../adapters/targets.js';
import { defineCommand, envWithFlags, pluginOptions } from './command.js';
import { dim } from './output.js';
import { lazyDeploySession } from './plugins.js';
import { command as serveCommand, DEFAULT_GATEWAY } from './serve.js';

export const command = defineCommand({
  name: 'dev',
  summary: 'serve, deploy a folder of functions and redeploy them when they change, in one terminal',
  usage: '[folder]',
  description: [
    'Starts `micro-fn serve --watch`, deploys the function in [folder] (default .), or every function in its',
    'subfolders, and redeploys one when its files change. serve prints a line per invocation and the functions',
    "print their output here. Ctrl-C stops serve and the function processes; the deployed functions stay in serve's",
    'state (the next `micro-fn serve` at the address brings them back; `micro-fn remove <name>` takes one away).',
  ].join('\n'),
  options: {
    // serve's own: dev hands them to the serve it starts.
    address: serveCommand.options.address,
    pool: serveCommand.options.pool,
    timeout: serveCommand.options.timeout,
    quiet: serveCommand.options.quiet,
    ...pluginOptions,
  },
  examples: ['micro-fn dev', 'micro-fn dev examples', 'micro-fn dev examples/helloworld --address 127.0.0.1:0'],
  async run({ positionals, values }) {
    const [folder = '.', extra] = positionals;
    if (extra !== undefined) throw new UserError(`unexpected argument "${extra}": micro-fn dev takes one folder`);
    const entries = functionsIn(folder);
    const env = envWithFlags(values);
    const flags = ['--watch', '--address', values.address ?? DEFAULT_GATEWAY];
    if (values.pool !== undefined) flags.push('--pool', values.pool);
    if (values.timeout !== undefined) flags.push('--timeout', values.timeout);
    if (values.quiet) flags.push('--quiet');
    if (values.json) flags.push('--json'); // serve's lines, the request log included, as JSON

    const serve = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'serve', ...flags], {
      env,
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    const exited = new Promise<number>((done) => serve.once('exit', (code, signal) => done(code ?? (signal ? 1 : 0))));
    // Ctrl-C reaches serve too (the terminal signals the whole process group): dev waits for it to stop.
    let stopping = false;
    const stop = () => {
      stopping = true;
      serve.kill('SIGTERM');
    };
    process.once('SIGINT', stop).once('SIGTERM', stop);
    try {
      const runtime = await listening(serve, exited);
      if (runtime === undefined) return await exited; // serve failed to start: it said why
      const target = await loadTarget('local');
      const { session, close } = lazyDeploySession(env);
      let deployed = 0;
      try {
        for (const entry of entries) {
          if (stopping) break;
          try {
            const result = await target.deploy({
              entry,
              env: {},
              hostEnv: env,
              options: { runtime },
              session,
              progress: (line) => process.stderr.write(`${dim(line)}\n`),
            });
            process.stderr.write(`${result.summary}\n`);
            deployed++;
          } catch (err) {
            // One broken function does not stop the others: fixing its files redeploys it only once deployed, so
            // say how to retry.
            process.stderr.write(
              `${entryName(entry)} was not deployed: ${(err as Error).message}\n  fix it, then: micro-fn deploy ${relative(process.cwd(), entry) || entry} --runtime ${runtime}\n`,
            );
          }
        }
      } finally {
        await close();
      }
      if (!stopping) {
        const what =
          entries.length === 1 && deployed === 1 ? 'the function' : `${deployed} of ${entries.length} functions`;
        process.stderr.write(`micro-fn dev: ${what} deployed at ${runtime}; files are watched; Ctrl-C stops\n`);
      }
      const code = await exited;
      return stopping ? 0 : code;
    } finally {
      process.off('SIGINT', stop).off('SIGTERM', stop);
      if (serve.exitCode === null && serve.signalCode === null) {
        serve.kill('SIGTERM');
        await exited;
      }
    }
  },
});

/** The function in `folder`, or those in its subfolders (a project of several); one clear line if there is none. */
function functionsIn(folder: string): string[] {
  const path = resolve(folder);
  if (!existsSync(path)) throw new UserError(`${folder}: no such folder`);
  if (!statSync(path).isDirectory()) return [resolveEntry(path)];
  try {
    return [resolveEntry(path)];
  } catch {
    // not a function itself: its subfolders may be
  }
  const found: string[] = [];
  for (const name of readdirSync(path).sort()) {
    if (name.startsWith('.') || name === 'node_modules') continue;
    const sub = join(path, name);
    if (!statSync(sub).isDirectory()) continue;
    try {
      found.push(resolveEntry(sub));
    } catch {
      // a folder without an entry file: not a function
    }
  }
  if (found.length === 0)
    throw new UserError(
      `${folder} holds no function (an index.ts, here or in a subfolder): micro-fn new <name> makes one`,
    );
  return found;
}

/**
 * Resolves with the URL serve registered once it says it is listening, or undefined when it exits first; what serve
 * writes to stderr is passed on to this terminal as it comes.
 */
function listening(serve: ChildProcess, exited: Promise<number>): Promise<string | undefined> {
  return new Promise((done) => {
    let seen = '';
    let found = false;
    serve.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      if (found) return;
      seen += chunk.toString();
      // "micro-fn serve listening on http://127.0.0.1:52980" or "… (registered as http://…)"
      const match = /listening on (\S+)(?: \(registered as (\S+?)\))?/.exec(seen);
      if (match) {
        found = true;
        done(match[2] ?? match[1]);
      }
    });
    void exited.then(() => done(undefined));
  });
}
