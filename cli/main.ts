/** Wires the commands: each lives in its own file and is loaded only when asked for, so --help is instant. */
import { help, quietAwsSdk, runCommand, type Command } from './command.js';
import { report } from './output.js';
import { didYouMean } from './suggest.js';
import { UserError } from '../runtime/core/errors.js';

const commands: Record<string, { summary: string; load: () => Promise<{ command: Command }> }> = {
  new: { summary: 'scaffold a function that builds, runs and has a test', load: () => import('./new.js') },
  build: { summary: "bundle a function and print the artifact's path and size", load: () => import('./build.js') },
  deploy: {
    summary: 'build a function and deploy it: to the running micro-fn serve, AWS Lambda or Cloudflare Workers',
    load: () => import('./deploy.js'),
  },
  remove: {
    summary: 'take a deployed function away: from micro-fn serve, AWS Lambda, Cloudflare Workers or Deno',
    load: () => import('./remove.js'),
  },
  serve: {
    summary: 'the local runtime: gateway, broker, a fresh process per invocation',
    load: () => import('./serve.js'),
  },
  dev: {
    summary: 'serve, deploy a folder of functions and redeploy them when they change, in one terminal',
    load: () => import('./dev.js'),
  },
  invoke: {
    summary: 'run a function once, in a fresh process, and print its reply',
    load: () => import('./invoke.js'),
  },
  run: {
    summary: 'run a function standalone: listen, register, serve one invocation, exit',
    load: () => import('./run.js'),
  },
  call: { summary: 'call a service endpoint through the registry', load: () => import('./call.js') },
  publish: { summary: 'publish a JSON message on a topic', load: () => import('./publish.js') },
  services: { summary: 'list the services in the registry', load: () => import('./services.js') },
  describe: { summary: 'show a service: versions, endpoints, nodes', load: () => import('./describe.js') },
  logs: { summary: "print a function's output [--follow]", load: () => import('./logs.js') },
  ps: {
    summary: 'what micro-fn serve runs: processes, counts, p50/p99 per function; the broker backlog',
    load: () => import('./ps.js'),
  },
  dashboard: {
    summary: "a login link to micro-fn serve's dashboard: functions, live invocations, logs, dead letters [--open]",
    load: () => import('./dashboard.js'),
  },
  dlq: { summary: "list a topic's dead-lettered messages [--replay]", load: () => import('./dlq.js') },
  store: { summary: "read and write a function's store: get, set, list, delete", load: () => import('./store.js') },
  config: {
    summary: "set and read a function's configuration (ctx.config): set, get, list, delete",
    load: () => import('./config.js'),
  },
  install: {
    summary: 'install an optional runtime: lambda-runtime (the Lambda runtime interface client serve runs)',
    load: () => import('./install.js'),
  },
  auth: {
    summary: 'tokens and rules for serve --auth; an AWS profile for its Lambda API',
    load: () => import('./auth.js'),
  },
};

// Set by build.mjs from package.json.
declare const __MICRO_FN_VERSION__: string | undefined;
const VERSION = typeof __MICRO_FN_VERSION__ === 'string' ? __MICRO_FN_VERSION__ : 'dev';

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  return [
    'Usage: micro-fn <command> [options]',
    '',
    'One-shot functions: each invocation runs in a fresh process that serves exactly one request or message.',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `micro-fn <command> --help` for its options.',
    '',
  ].join('\n');
}

/** An unknown command: one line with the closest command, if one is close; the list of commands otherwise. */
function unknownCommand(name: string, json: boolean): number {
  const hint = didYouMean(name, Object.keys(commands));
  if (hint || json) return report(new UserError(`unknown command "${name}"${hint} (see micro-fn --help)`), json);
  process.stderr.write(`micro-fn: unknown command "${name}"\n\n${usage()}`);
  return 1;
}

export async function main(argv: string[]): Promise<void> {
  quietAwsSdk();
  const [name, ...rest] = argv;
  const json = rest.includes('--json');
  if (name && Object.hasOwn(commands, name) && commands[name]) {
    const loaded = await commands[name].load().catch((err: unknown) => process.exit(report(err, json)));
    return runCommand(loaded.command, rest);
  }
  let code: number;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      const target = name === 'help' ? rest[0] : undefined;
      if (target && Object.hasOwn(commands, target) && commands[target]) {
        const { command } = await commands[target].load();
        process.stdout.write(await help(command, await command.sections?.()));
      } else process.stdout.write(usage());
      code = 0;
    } else if (name === '--version' || name === '-v') {
      process.stdout.write(`${VERSION}\n`);
      code = 0;
    } else {
      code = unknownCommand(name, json);
    }
  } catch (err) {
    code = report(err, json);
  }
  process.exit(code);
}
