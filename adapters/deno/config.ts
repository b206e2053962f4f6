/**
 * Build-time only: what Deno's own tooling needs beside a built module: a `deno.json` whose `start` task serves it
 * with the permissions it needs and no more (https://docs.deno.com/runtime/fundamentals/configuration/), and a
 * `.env` with the function's variables for `--env-file`.
 */
import { readConfig } from '../../runtime/core/config.js';
import { UserError } from '../../runtime/core/errors.js';
import { tracesEndpoint } from '../../runtime/plugins/otel/settings.js';

export interface DenoConfigOptions {
  /** The service name, for the task's description. */
  name: string;
  /** The module `deno serve` runs, relative to the folder. */
  main: string;
  /** The function's variables: written to `.env`, and their names allowed to it. */
  vars: Record<string, string>;
  /** Hosts its handlers reach themselves (`fetch`), for `--allow-net`. */
  allowNet?: string[];
  /** `deno serve --host` / `--port`; default Deno's (0.0.0.0:8000). */
  host?: string;
  port?: number;
}

/** The `start` task: `deno serve` with the permissions the function needs. */
export function serveCommand(options: DenoConfigOptions): string {
  // A function that exports spans reads OpenTelemetry's variables by name (OTEL_SDK_DISABLED, ...): all of them.
  const traces = tracesEndpoint(options.vars) !== undefined;
  const own = Object.keys(options.vars).filter(
    (key) => !key.startsWith('MICRO_') && !(traces && key.startsWith('OTEL_')),
  );
  if (traces) own.push('OTEL_*');
  // Quoted: deno task's shell would otherwise expand the `*` as a file glob.
  const args = ['deno', 'serve', '--no-prompt', `'--allow-env=${['MICRO_*', ...own.sort()].join(',')}'`];
  const net = allowNet(options);
  if (net !== undefined) args.push(net);
  if (Object.keys(options.vars).length > 0) args.push('--env-file=.env');
  if (options.host !== undefined) args.push('--host', options.host);
  if (options.port !== undefined) args.push('--port', String(options.port));
  args.push(options.main);
  return args.join(' ');
}

/**
 * `--allow-net`, or none. Listening needs none: `deno serve` allows its own host and port. A function with a
 * registry or a broker reaches its server and whatever nodes the registry names, which only run time knows: all
 * hosts. Otherwise only the hosts it is told its handlers reach.
 */
function allowNet(options: DenoConfigOptions): string | undefined {
  const config = readConfig(options.vars);
  if (config.registry !== undefined || config.broker !== undefined) return '--allow-net';
  const hosts = options.allowNet?.filter((h) => h !== '') ?? [];
  const traces = tracesEndpoint(options.vars);
  // Where its spans go (runtime/plugins/otel fetch-exporter.ts); a URL's host carries its port when it names one.
  if (traces) hosts.push(new URL(traces).host);
  if (hosts.some((h) => !/^[\w.:[\]-]+$/.test(h))) {
    throw new UserError(`--allow-net takes host[:port] names, comma-separated; got "${hosts.join(',')}"`);
  }
  return hosts.length > 0 ? `--allow-net=${hosts.join(',')}` : undefined;
}

/** `deno.json`: the `start` task, described. */
export function denoJson(options: DenoConfigOptions): string {
  const description = `Serve ${options.name} (written by micro-fn deploy --target deno)`;
  const start = { description, command: serveCommand(options) };
  return `${JSON.stringify({ tasks: { start } }, null, 2)}\n`;
}

/**
 * The variables as a `.env` file Deno's `--env-file` reads back as they are. Single quotes keep a value literal
 * (`$`, `#`, backslashes); a value holding a single quote or a newline goes in double quotes, where Deno expands
 * `\n` and `${VAR}` (so `$` is escaped) but keeps `\"` and `\\` as written, so such a value may hold neither.
 */
export function dotenv(vars: Record<string, string>): string {
  const lines = Object.entries(vars).map(([key, value]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new UserError(`--env ${key}: Deno's --env-file takes names of letters, digits and _ (no leading digit)`);
    }
    if (!/['\n\r]/.test(value)) return `${key}='${value}'`;
    if (/["\\\r]/.test(value)) {
      const why = 'a value with a single quote or a newline and a " or \\ cannot be written to .env';
      throw new UserError(`--env ${key}: ${why}; set ${key} where Deno runs it instead`);
    }
    return `${key}="${value.replaceAll('$', '\\$').replaceAll('\n', '\\n')}"`;
  });
  const header = '# Written by micro-fn deploy --target deno, for `deno serve --env-file=.env` (deno task start).';
  return `${[header, ...lines].join('\n')}\n`;
}
