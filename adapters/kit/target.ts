/**
 * How a target declares itself: one `target.ts` per `adapters/<target>/` folder, read by `micro-fn build`,
 * `micro-fn deploy`, their `--help` and the docs through the table in adapters/targets.ts. The CLI never branches
 * on a target's name: what a target needs (its flags, its build, its deploy, how it registers) is here.
 * Build-time only.
 */
import type { Env, Platform } from '../../runtime/core/index.js';
import type { Client } from '../../runtime/core/client.js';
import type { Registry } from '../../runtime/core/registry.js';

/** A command-line option of a target's deploy (`--role ARN`). */
export interface TargetOption {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help, e.g. `ARN`. */
  value?: string;
  description: string;
}

/** The parsed values of a set of options, typed from their specs. */
export type OptionValues<O extends Record<string, TargetOption>> = {
  readonly [K in keyof O]?: O[K]['type'] extends 'boolean'
    ? boolean
    : O[K]['multiple'] extends true
      ? string[]
      : string;
};

export interface BuildRequest {
  /** The entry file, resolved. */
  entry: string;
  outdir: string;
  /** Absent: the target's default (minified for a platform that parses the bundle at every cold start). */
  minify?: boolean;
  /** The function's configuration: for a target whose bundle carries only the plugins it selects. */
  env: Env;
}

export interface BuildOutput {
  /** The main artifact (the bundle). */
  file: string;
  size: number;
  ms: number;
  /** More artifacts (a zip, lazily loaded chunks), with their sizes. */
  artifacts?: { file: string; size: number }[];
}

/** What the deploying host opens on demand: its registry and a client, from its own configuration. */
export interface DeploySession {
  registry: Registry;
  client: Client;
}

export interface DeployRequest<V> {
  /** The entry file, resolved. */
  entry: string;
  /** The function's own environment (`--env KEY=VALUE`). */
  env: Record<string, string>;
  /** The deploying host's environment (credentials, MICRO_FN_HOME, the registry it registers in). */
  hostEnv: Env;
  /** This target's options, as given. */
  options: V;
  /** Opens the host's registry and client (closed by the caller after the deploy). */
  session(): Promise<DeploySession>;
  /** One line of progress for the user. */
  progress(line: string): void;
}

export interface DeployOutput {
  /** The service name. */
  name: string;
  /** Where it is reached, when it is. */
  address?: string;
  /** One line for the user, e.g. `deployed helloworld (Greeter.Hello) at lambda://…, version 3`. */
  summary: string;
  /** Printed as the `--json` result. */
  details: Record<string, unknown>;
  /** Lines to print on stdout instead of the summary (a dry run's plan). */
  plan?: string[];
}

export interface RemoveRequest<V> {
  /** The service name, as deployed. */
  name: string;
  /** The host's environment (credentials, MICRO_FN_HOME, the registry). */
  hostEnv: Env;
  /** This target's remove options, as given. */
  options: V;
  /** Opens the host's registry and client (closed by the caller after the removal). */
  session(): Promise<DeploySession>;
  /** One line of progress for the user. */
  progress(line: string): void;
}

export interface RemoveOutput {
  /** One line for the user, e.g. `removed helloworld: deleted Lambda function helloworld in us-east-1`. */
  summary: string;
  /** Printed as the `--json` result. */
  details: Record<string, unknown>;
}

/** A target: where a function runs, and how micro-fn gets it there. */
export interface Target<
  O extends Record<string, TargetOption> = Record<string, TargetOption>,
  R extends Record<string, TargetOption> = Record<string, TargetOption>,
> {
  /** `--target NAME`. */
  name: string;
  /** One line for help: where the function runs. */
  summary: string;
  /** Where its bundle runs: which plugins it may carry. */
  platform: Platform;
  /** A paragraph for `micro-fn deploy --help`. */
  description: string[];
  /** Its own deploy options: the CLI refuses them with another target. */
  options: O;
  examples: string[];
  build(request: BuildRequest): Promise<BuildOutput>;
  /**
   * Builds and deploys, and registers the function where callers find it: through the host that runs it
   * (micro-fn serve registers its functions), or itself, without a TTL, when nothing there refreshes an entry
   * (kit/register.ts: a Lambda function, a Worker). A dry run registers nothing.
   */
  deploy(request: DeployRequest<OptionValues<O>>): Promise<DeployOutput>;
  /** Its own options of `micro-fn remove --target NAME`. */
  removeOptions: R;
  /**
   * Takes a deployed function away where it runs and out of the registry (`micro-fn remove`), so nothing lists a
   * function that cannot be called. Removing one that is not there is a UserError that says so, unless there was a
   * registry entry left to remove.
   */
  remove(request: RemoveRequest<OptionValues<R>>): Promise<RemoveOutput>;
}

/** Declares a target: checks nothing at run time, types its options' values for its deploy and its remove. */
export function defineTarget<
  const O extends Record<string, TargetOption>,
  const R extends Record<string, TargetOption> = Record<never, TargetOption>,
>(target: Target<O, R>): Target<O, R> {
  return target;
}

/**
 * The values of `target`'s own options out of everything a command line parsed. The parser was given these very
 * specs, so each value has the type its spec says.
 */
export function optionValues<O extends Record<string, TargetOption>>(
  target: Target<O>,
  parsed: Readonly<Record<string, unknown>>,
): OptionValues<O> {
  return Object.fromEntries(Object.keys(target.options).map((name) => [name, parsed[name]])) as OptionValues<O>;
}

/** The values of `target`'s own remove options out of everything a command line parsed (see optionValues). */
export function removeOptionValues<R extends Record<string, TargetOption>>(
  target: Target<Record<string, TargetOption>, R>,
  parsed: Readonly<Record<string, unknown>>,
): OptionValues<R> {
  return Object.fromEntries(Object.keys(target.removeOptions).map((name) => [name, parsed[name]])) as OptionValues<R>;
}
