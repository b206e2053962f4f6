/** What every command file exports, and the shared argument parsing and help text. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { OptionValues, TargetOption } from '../adapters/kit/target.js';
import { UserError } from '../runtime/core/errors.js';
import { report } from './output.js';
import { didYouMean } from './suggest.js';

/** An option's spec; the same shape as a target's options. */
export type OptionSpec = TargetOption;

/** More options, with a title and a paragraph of their own in the help (a target's deploy options). */
export interface OptionSection {
  title: string;
  description?: string[];
  options: Record<string, OptionSpec>;
  /** Shown with the command's own examples. */
  examples?: string[];
}

/** What the parser makes of a command line: every value typed as its spec says. */
export interface Parsed<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  positionals: string[];
  values: OptionValues<O & typeof commonOptions>;
}

export interface Command<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  name: string;
  summary: string;
  /** Positionals part of the usage line, e.g. `<entry> <Service.Method> [json]`. */
  usage: string;
  description?: string;
  options: O;
  /** Options read from elsewhere (the target table), parsed and shown after `options`. */
  sections?(): Promise<OptionSection[]>;
  examples?: string[];
  run(args: Parsed<O>): Promise<number>;
}

/** Declares a command: its `run` gets every option's value typed from the option's spec. */
export function defineCommand<const O extends Record<string, OptionSpec>>(command: Command<O>): Command<O> {
  return command;
}

/** Options every command takes. */
export const commonOptions = {
  json: { type: 'boolean', description: 'machine-readable output (errors as error JSON)' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
} as const satisfies Record<string, OptionSpec>;

/** For commands that load a function. */
export const sourceMapOption = {
  'source-maps': {
    type: 'boolean',
    description: 'stack traces name the TypeScript sources (the default; a map is read only when a stack is printed)',
  },
  'no-source-maps': { type: 'boolean', description: 'stack traces name the bundle (index.mjs) instead' },
} as const satisfies Record<string, OptionSpec>;

/** Registry and broker choice, mirroring MICRO_REGISTRY, MICRO_REGISTRY_ADDRESS, MICRO_BROKER, MICRO_BROKER_ADDRESS. */
export const pluginOptions = {
  registry: { type: 'string', value: 'NAME', description: 'registry: {registry} (env MICRO_REGISTRY)' },
  'registry-address': { type: 'string', value: 'URL', description: 'registry address (env MICRO_REGISTRY_ADDRESS)' },
  broker: { type: 'string', value: 'NAME', description: 'broker: {broker} (env MICRO_BROKER)' },
  'broker-address': { type: 'string', value: 'URL', description: 'broker address (env MICRO_BROKER_ADDRESS)' },
} as const satisfies Record<string, OptionSpec>;

/** The registry flags alone, for commands that read the registry and publish nothing. */
export const registryOptions = {
  registry: pluginOptions.registry,
  'registry-address': pluginOptions['registry-address'],
} as const satisfies Record<string, OptionSpec>;

/** The store of `ctx.store`, mirroring MICRO_STORE. */
export const storeOption = {
  store: { type: 'string', value: 'NAME', description: 'the store of ctx.store: {store} (env MICRO_STORE)' },
} as const satisfies Record<string, OptionSpec>;

/** The locks of `ctx.sync`, mirroring MICRO_SYNC. */
export const syncOption = {
  sync: { type: 'string', value: 'NAME', description: 'the locks of ctx.sync: {sync} (env MICRO_SYNC)' },
} as const satisfies Record<string, OptionSpec>;

/** Where the keys of `ctx.config` that `micro-fn config set` writes are kept, mirroring MICRO_CONFIG. */
export const configOption = {
  config: {
    type: 'string',
    value: 'NAME',
    description: 'where ctx.config keys set with micro-fn config are kept: {config} (env MICRO_CONFIG)',
  },
} as const satisfies Record<string, OptionSpec>;

/** What a standalone function listens with, mirroring MICRO_TRANSPORT. */
export const transportOption = {
  transport: { type: 'string', value: 'NAME', description: 'listen with http (default) or nats (env MICRO_TRANSPORT)' },
} as const satisfies Record<string, OptionSpec>;

/** Every option a command takes: its own, its sections' (an option several sections share is parsed once), the common ones. */
export function allOptions(command: Command, sections: OptionSection[] = []): Record<string, OptionSpec> {
  return Object.assign({}, ...sections.map((s) => s.options), command.options, commonOptions) as Record<
    string,
    OptionSpec
  >;
}

export function parse(command: Command, argv: string[], sections: OptionSection[] = []): Parsed {
  const options = allOptions(command, sections);
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(options).map(([k, o]) => [
          k,
          { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
    // The parser was given these very specs: each value has the type its spec says.
    return { values: values as Parsed['values'], positionals };
  } catch (err) {
    const message = (err as Error).message.split('\n')[0]!;
    const unknown = /^Unknown option '(--?)([^']+)'/.exec(message);
    if (unknown) {
      const [, dashes, flag] = unknown;
      const names = dashes === '--' ? Object.keys(options) : Object.values(options).flatMap((o) => o.short ?? []);
      throw new UserError(
        `unknown option ${dashes}${flag}${didYouMean(flag!, names, (n) => `${dashes}${n}`)} (see micro-fn ${command.name} --help)`,
      );
    }
    throw new UserError(`${message} (see micro-fn ${command.name} --help)`);
  }
}

/**
 * The help text. `{registry}`, `{broker}`, `{store}`, `{sync}` and `{config}` in a description become the plugins the descriptors list, read only
 * here: a command that does not show help does not load them.
 */
export async function help(command: Command, sections: OptionSection[] = []): Promise<string> {
  const { pluginNames } = await import('../runtime/plugins/resolve.js');
  const names = (text: string) =>
    text.replace(
      /\{(registry|broker|store|sync|config)\}/g,
      (_, kind: 'registry' | 'broker' | 'store' | 'sync' | 'config') => pluginNames(kind),
    );
  const examples = [...(command.examples ?? []), ...sections.flatMap((s) => s.examples ?? [])];
  const rows = (options: Record<string, OptionSpec>) =>
    Object.entries(options).map(([name, o]) => {
      const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
      return `  ${flag.padEnd(30)} ${names(o.description)}`;
    });
  return [
    `Usage: micro-fn ${[command.name, command.usage, '[options]'].filter(Boolean).join(' ')}`,
    '',
    command.description ?? command.summary,
    '',
    'Options:',
    ...rows({ ...command.options, ...commonOptions }),
    ...sections.flatMap((s) => [
      '',
      `${s.title}:`,
      ...(s.description ?? []).map((line) => `  ${line}`),
      ...rows(s.options),
    ]),
    ...(examples.length ? ['', 'Examples:', ...examples.map((e) => `  $ ${e}`)] : []),
    '',
  ].join('\n');
}

/**
 * micro-fn supports every Node the SDK still runs on (engines: >=20); the SDK's notice that its own releases after
 * January 2027 will need Node 22 would print 9 lines on every Lambda deploy and call. Its documented switch
 * (aws/aws-sdk-js-v3#7983), unless the user set it themselves.
 */
export function quietAwsSdk(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

/**
 * Runs `command` with the arguments after its name: its help with --help, else its `run`; a failure reported as
 * output.ts does. Then exits with the code: a one-shot process ends now, even if a user's timer or socket is still
 * open. The full CLI (main.ts) and a command's entry of its own (invoke-main.ts) both end here.
 */
export async function runCommand(command: Command, argv: string[]): Promise<never> {
  quietAwsSdk();
  let code: number;
  try {
    const sections = await command.sections?.();
    const args = parse(command, argv, sections);
    if (args.values.help) {
      process.stdout.write(await help(command, sections));
      code = 0;
    } else code = await command.run(args);
  } catch (err) {
    code = report(err, argv.includes('--json'));
  }
  process.exit(code);
}

/** The environment with the plugin flags applied over it (flags win). */
export function envWithFlags(
  values: Readonly<Record<string, unknown>>,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  const map: Record<string, string> = {
    registry: 'MICRO_REGISTRY',
    'registry-address': 'MICRO_REGISTRY_ADDRESS',
    broker: 'MICRO_BROKER',
    'broker-address': 'MICRO_BROKER_ADDRESS',
    address: 'MICRO_SERVER_ADDRESS',
    transport: 'MICRO_TRANSPORT',
    store: 'MICRO_STORE',
    sync: 'MICRO_SYNC',
    config: 'MICRO_CONFIG',
  };
  for (const [flag, name] of Object.entries(map)) {
    const value = values[flag];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}

export { duration } from '../adapters/kit/options.js';

/** `--metadata KEY=VALUE` flags as a record. */
export function metadataFlags(pairs: readonly string[] | undefined): Record<string, string> {
  return Object.fromEntries(
    (pairs ?? []).map((text) => {
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
