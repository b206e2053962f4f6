/** What every command file exports, and the shared argument parsing and help text. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UserError } from '../runtime/core/errors.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help, e.g. `MS`. */
  value?: string;
  description: string;
}

export interface Parsed {
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

export interface Command {
  name: string;
  summary: string;
  /** Positionals part of the usage line, e.g. `<entry> <Service.Method> [json]`. */
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  examples?: string[];
  run(args: Parsed): Promise<number>;
}

/** Options every command takes. */
export const commonOptions: Record<string, OptionSpec> = {
  json: { type: 'boolean', description: 'machine-readable output (errors as error JSON)' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

/** For commands that load a function. */
export const sourceMapOption: Record<string, OptionSpec> = {
  'source-maps': { type: 'boolean', description: 'map stack traces to the TypeScript sources (costs start-up time)' },
};

/** Registry and broker choice, mirroring MICRO_REGISTRY, MICRO_REGISTRY_ADDRESS, MICRO_BROKER, MICRO_BROKER_ADDRESS. */
export const pluginOptions: Record<string, OptionSpec> = {
  registry: { type: 'string', value: 'NAME', description: 'registry: local (default), memory or nats (env MICRO_REGISTRY)' },
  'registry-address': { type: 'string', value: 'URL', description: 'registry address (env MICRO_REGISTRY_ADDRESS)' },
  broker: { type: 'string', value: 'NAME', description: 'broker: local (default), memory, nats or jetstream (env MICRO_BROKER)' },
  'broker-address': { type: 'string', value: 'URL', description: 'broker address (env MICRO_BROKER_ADDRESS)' },
};

/** What a standalone function listens with, mirroring MICRO_TRANSPORT. */
export const transportOption: Record<string, OptionSpec> = {
  transport: { type: 'string', value: 'NAME', description: 'listen with http (default) or nats (env MICRO_TRANSPORT)' },
};

export function parse(command: Command, argv: string[]): Parsed {
  const options = { ...command.options, ...commonOptions };
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]),
      ),
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Parsed['values'], positionals };
  } catch (err) {
    throw new UserError(`${(err as Error).message.split('\n')[0]} (see micro-fn ${command.name} --help)`);
  }
}

export function help(command: Command): string {
  const options = { ...command.options, ...commonOptions };
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    return `  ${flag.padEnd(30)} ${o.description}`;
  });
  return [
    `Usage: micro-fn ${command.name} ${command.usage} [options]`,
    '',
    command.description ?? command.summary,
    '',
    'Options:',
    ...rows,
    ...(command.examples?.length ? ['', 'Examples:', ...command.examples.map((e) => `  $ ${e}`)] : []),
    '',
  ].join('\n');
}

/** The environment with the plugin flags applied over it (flags win). */
export function envWithFlags(values: Parsed['values'], env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  const map: Record<string, string> = {
    registry: 'MICRO_REGISTRY',
    'registry-address': 'MICRO_REGISTRY_ADDRESS',
    broker: 'MICRO_BROKER',
    'broker-address': 'MICRO_BROKER_ADDRESS',
    address: 'MICRO_SERVER_ADDRESS',
    transport: 'MICRO_TRANSPORT',
  };
  for (const [flag, name] of Object.entries(map)) if (typeof values[flag] === 'string') out[name] = values[flag] as string;
  return out;
}

/** Parses `500`, `500ms`, `2s`, `1m` into milliseconds. */
export function duration(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!match) throw new UserError(`--${flag} takes a duration like 500ms, 30s or 5m; got "${value}"`);
  const n = Number(match[1]);
  return Math.round(match[2] === 's' ? n * 1000 : match[2] === 'm' ? n * 60_000 : n);
}

/** `--metadata KEY=VALUE` flags as a record. */
export function metadataFlags(values: Parsed['values']): Record<string, string> {
  const pairs = (values.metadata as string[] | undefined) ?? [];
  return Object.fromEntries(
    pairs.map((text) => {
      const i = text.indexOf('=');
      if (i <= 0) throw new UserError(`--metadata takes KEY=VALUE; got "${text}"`);
      return [text.slice(0, i), text.slice(i + 1)];
    }),
  );
}

/** The text of a JSON argument: `-` reads stdin; absent gives `fallback`. */
export function argumentText(data: string | undefined, fallback = ''): string {
  return data === '-' ? readFileSync(0, 'utf8') : (data ?? fallback);
}

/** A JSON argument (`-`: stdin; absent or empty: `{}`), parsed; `what` names it in the error. */
export function jsonArgument(data: string | undefined, what: string): unknown {
  const text = argumentText(data);
  try {
    return JSON.parse(text || '{}');
  } catch (err) {
    throw new UserError(`the ${what} is not JSON: ${(err as Error).message}`);
  }
}
