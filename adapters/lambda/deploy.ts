/**
 * Build-time only: deploys a function to AWS Lambda (or another Lambda API, such as `micro-fn serve`'s) with
 * `@aws-sdk/client-lambda`: create it, or update its code and then its configuration, waiting with the SDK's
 * V2 waiters between steps; publish a version; create or move an alias; and register the function in the
 * configured registry at `lambda://REGION/NAME:ALIAS`, where the Lambda transport invokes it.
 */
import { relative } from 'node:path';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { Router, UserError, type Env, type ServiceDefinition } from '../../runtime/core/index.js';
import {
  LAMBDA_ENDPOINT_METADATA,
  LAMBDA_STREAMING_METADATA,
  formatLambdaAddress,
} from '../../runtime/plugins/lambda/address.js';
import { createLambdaClient, isLoopback, loadLambdaSdk, type LambdaSdk } from '../../runtime/plugins/lambda/client.js';
import { resolvePlugins } from '../../runtime/plugins/resolve.js';
import { loadDefinition } from '../kit/definition.js';
import { deploymentRecord, registerDeployment } from '../kit/register.js';
import { buildLambda } from './build.js';
import { streamsReplies } from './stream.js';

export interface LambdaDeployOptions {
  /** The function's entry file (resolved). */
  entry: string;
  /** Where `index.mjs` and `function.zip` are written. */
  outdir: string;
  /** ARN of the execution role, needed to create the function (a loopback endpoint takes a placeholder). */
  role?: string;
  /** Default: the AWS chain's (AWS_REGION, the profile); us-east-1 for a loopback endpoint. */
  region?: string;
  /** MB, 128 to 10240. On create Lambda's default (128); on update unchanged when absent. */
  memory?: number;
  /** Seconds, 1 to 900. On create Lambda's default (3); on update unchanged when absent. */
  timeout?: number;
  /** The function's environment variables (all of them: a deploy replaces them). They also decide whether the bundle carries NATS. */
  env?: Record<string, string>;
  /** Default `live`. */
  alias?: string;
  /** Another Lambda API than AWS's. Default: AWS_ENDPOINT_URL_LAMBDA of `hostEnv`. */
  endpoint?: string;
  /** Build, and say what would be done, without calling AWS or the registry. */
  dryRun?: boolean;
  /** Called with each step, one line each. */
  onProgress?: (line: string) => void;
  /** The deploying host's environment: AWS settings, and the registry (MICRO_REGISTRY, ...). Default process.env. */
  hostEnv?: Env;
}

export interface LambdaDeployResult {
  /** The service name; the Lambda function's name is `functionName`. */
  name: string;
  functionName: string;
  region: string;
  alias: string;
  /** The version published; absent after a dry run. */
  version?: string;
  /** `lambda://REGION/NAME:ALIAS`, the node address registered. */
  address: string;
  endpoints: string[];
  topics: string[];
  /** What a dry run would do, a line each (empty otherwise). */
  plan: string[];
  zip: { file: string; size: number };
}

/** Lambda's runtime for the bundle (build.ts targets node22) and its handler. */
const RUNTIME = 'nodejs22.x' as const;
const HANDLER = 'index.handler';
const LOCAL_ROLE = 'arn:aws:iam::000000000000:role/micro-fn-local';

/**
 * Deploys `entry` and registers it. A deploy while another update of the function is in progress waits for
 * it (the 409 ResourceConflictException is retried after the waiter), so two deploys never race.
 * @example
 * const { address } = await deployLambda({ entry: resolveEntry('examples/helloworld'), outdir: 'dist/helloworld',
 *   role: 'arn:aws:iam::123456789012:role/micro-fn-lambda', onProgress: console.error });
 * // lambda://us-east-1/helloworld:live
 */
/** What maps a Lambda function's stack traces to its sources: `--enable-source-maps`, in NODE_OPTIONS. */
export const SOURCE_MAPS = '--enable-source-maps';

export async function deployLambda(options: LambdaDeployOptions): Promise<LambdaDeployResult> {
  const progress = options.onProgress ?? (() => {});
  const hostEnv = options.hostEnv ?? process.env;
  const endpoint = options.endpoint ?? (hostEnv.AWS_ENDPOINT_URL_LAMBDA || undefined);
  const local = endpoint !== undefined && isLoopback(endpoint);
  const alias = options.alias ?? 'live';
  if (!/^(?!^[0-9]+$)[a-zA-Z0-9-_]{1,128}$/.test(alias))
    throw new UserError(`--alias ${alias}: letters, digits, dashes and underscores, not only digits`);
  checkLimits(options);
  const variables = options.env ?? {};
  const [definition, built, sdk] = await Promise.all([
    loadDefinition(options.entry, hostEnv),
    buildLambda(options.entry, { outdir: options.outdir, env: variables }),
    loadLambdaSdk(),
  ]);
  const zip = built.artifacts[0]!;
  const shown = relative(process.cwd(), zip.file);
  progress(
    `built ${definition.name} for Lambda: ${shown.startsWith('..') ? zip.file : shown} (${(zip.size / 1024).toFixed(1)} KiB)`,
  );
  const functionName = lambdaName(definition.name);
  const client = createLambdaClient(sdk, {
    region: options.region ?? (local ? (hostEnv.AWS_REGION ?? 'us-east-1') : undefined),
    endpoint,
    env: hostEnv,
  });
  try {
    const region = await regionOf(client);
    const router = new Router(definition);
    const address = formatLambdaAddress({ region, name: functionName, qualifier: alias });
    const result: LambdaDeployResult = {
      name: definition.name,
      functionName,
      region,
      alias,
      address,
      endpoints: router
        .endpoints()
        .filter((e) => !e.metadata.subscriber)
        .map((e) => e.name),
      topics: router.topics,
      plan: [],
      zip,
    };
    const role = options.role ?? (local ? LOCAL_ROLE : undefined);
    const where = `${functionName} in ${region}${endpoint ? ` at ${endpoint}` : ''}`;
    const settings = {
      Runtime: RUNTIME,
      Handler: HANDLER,
      MemorySize: options.memory,
      Timeout: options.timeout,
      // The bundle's source map is in the package; this makes Node use it (AWS's documented way).
      Environment: { Variables: { NODE_OPTIONS: SOURCE_MAPS, ...variables } },
      Description: `micro-fn function ${definition.name}`,
    };
    if (options.dryRun) {
      result.plan = [
        `create ${where} (${RUNTIME}, ${HANDLER}, ${options.memory ?? 128} MB, ${options.timeout ?? 3} s, role ${role ?? '(none: pass --role to create it)'}), or if it exists update its code, then its configuration`,
        `environment: ${Object.keys(variables).join(', ') || '(none)'}`,
        `publish a version and point alias ${alias} at it`,
        `register ${definition.name} at ${address} (${[...result.endpoints, ...result.topics.map((t) => `topic ${t}`)].join(', ') || 'no endpoints'})`,
      ];
      return result;
    }
    const steps = new Steps(sdk, client, functionName, progress, local);
    const code = new Uint8Array(await (await import('node:fs/promises')).readFile(zip.file));
    if (await steps.exists()) {
      await steps.retryWhileUpdating(() =>
        client.send(new sdk.UpdateFunctionCodeCommand({ FunctionName: functionName, ZipFile: code })),
      );
      progress(`updating the code of ${where}`);
      await steps.updated();
      await steps.retryWhileUpdating(() =>
        client.send(
          new sdk.UpdateFunctionConfigurationCommand({ FunctionName: functionName, Role: options.role, ...settings }),
        ),
      );
      progress(`updating the configuration of ${functionName}`);
      await steps.updated();
    } else {
      if (!role)
        throw new UserError(
          `creating ${where} needs its execution role: --role arn:aws:iam::ACCOUNT:role/NAME (a role Lambda can assume, with AWSLambdaBasicExecutionRole)`,
        );
      await client.send(
        new sdk.CreateFunctionCommand({ FunctionName: functionName, Role: role, Code: { ZipFile: code }, ...settings }),
      );
      progress(`creating ${where}`);
      await steps.active();
    }
    const published = await steps.retryWhileUpdating(() =>
      client.send(new sdk.PublishVersionCommand({ FunctionName: functionName })),
    );
    result.version = published.Version!;
    progress(`published version ${result.version}`);
    await steps.pointAlias(alias, result.version);
    await register(definition, result, endpoint, hostEnv);
    progress(`registered ${definition.name} at ${address}`);
    return result;
  } finally {
    client.destroy();
  }
}

/** The steps that wait: the V2 waiters, and retries of a step refused because another update is in progress. */
class Steps {
  readonly #waiter: { client: LambdaClient; maxWaitTime: number; minDelay?: number; maxDelay?: number };

  constructor(
    readonly sdk: LambdaSdk,
    readonly client: LambdaClient,
    readonly name: string,
    readonly progress: (line: string) => void,
    local: boolean,
  ) {
    // A local endpoint settles in a fraction of a second: poll it faster than AWS's default (1 s and up).
    this.#waiter = { client, maxWaitTime: 300, ...(local ? { minDelay: 0.1, maxDelay: 2 } : {}) };
  }

  async exists(): Promise<boolean> {
    try {
      await this.client.send(new this.sdk.GetFunctionCommand({ FunctionName: this.name }));
      return true;
    } catch (err) {
      if ((err as Error).name === 'ResourceNotFoundException') return false;
      throw explain(err, this.name);
    }
  }

  async active(): Promise<void> {
    await this.#wait(
      () => this.sdk.waitUntilFunctionActiveV2(this.#waiter, { FunctionName: this.name }),
      'become Active',
    );
  }

  async updated(): Promise<void> {
    await this.#wait(
      () => this.sdk.waitUntilFunctionUpdatedV2(this.#waiter, { FunctionName: this.name }),
      'finish its update',
    );
  }

  /** Runs `step`; while Lambda answers 409 (another deploy's update in progress), waits for that update and tries again. */
  async retryWhileUpdating<T>(step: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if ((err as Error).name !== 'ResourceConflictException' || attempt === 10) throw explain(err, this.name);
        this.progress(`${this.name}: another update is in progress; waiting for it`);
        await this.active();
        await this.updated();
      }
    }
  }

  /** Moves the alias to `version`, creating it the first time. */
  async pointAlias(alias: string, version: string): Promise<void> {
    try {
      await this.client.send(
        new this.sdk.UpdateAliasCommand({ FunctionName: this.name, Name: alias, FunctionVersion: version }),
      );
      this.progress(`moved alias ${alias} to version ${version}`);
    } catch (err) {
      if ((err as Error).name !== 'ResourceNotFoundException') throw explain(err, this.name);
      await this.client
        .send(new this.sdk.CreateAliasCommand({ FunctionName: this.name, Name: alias, FunctionVersion: version }))
        .catch((e: unknown) => {
          throw explain(e, this.name);
        });
      this.progress(`created alias ${alias} for version ${version}`);
    }
  }

  async #wait(waiter: () => Promise<unknown>, what: string): Promise<void> {
    try {
      await waiter();
    } catch (err) {
      // The waiter's message is the last GetFunction answer as JSON: one line of it says why; the CLI's --json error
      // carries all of it (`response`).
      const response = (err as Error).message;
      throw Object.assign(new UserError(`${this.name} did not ${what}: ${waiterReason(response)}`, { cause: err }), {
        response,
      });
    }
  }
}

/**
 * Why a waiter gave up, in one line, from its error message (the waiter's result as JSON: `{state, reason}`, the
 * reason being the last GetFunction answer or a sentence): the function's State and LastUpdateStatus with Lambda's
 * reasons, else the reason itself, else the message's first 200 characters.
 */
export function waiterReason(message: string): string {
  let result: { state?: unknown; reason?: unknown } | undefined;
  try {
    result = JSON.parse(message) as typeof result;
  } catch {
    // not the waiter's JSON
  }
  const reason = result?.reason as
    { Configuration?: Record<string, unknown>; name?: unknown; message?: unknown } | string | undefined;
  if (typeof reason === 'string') return `${reason} (${String(result?.state)})`;
  const c = reason?.Configuration;
  const parts: string[] = [];
  if (typeof c?.State === 'string' && c.State !== 'Active')
    parts.push(`State ${c.State}${typeof c.StateReason === 'string' ? ` (${c.StateReason})` : ''}`);
  if (typeof c?.LastUpdateStatus === 'string' && c.LastUpdateStatus !== 'Successful')
    parts.push(
      `LastUpdateStatus ${c.LastUpdateStatus}${typeof c.LastUpdateStatusReason === 'string' ? ` (${c.LastUpdateStatusReason})` : ''}`,
    );
  if (parts.length > 0) return parts.join('; ');
  if (typeof reason?.message === 'string') return `${String(reason.name ?? 'Error')}: ${reason.message}`;
  const first = message.split('\n')[0]!;
  return first.length > 200 ? `${first.slice(0, 200)}… (--json shows all of it)` : first;
}

/** An AWS failure as one line that names the function; credentials and permissions get a hint. */
function explain(err: unknown, name: string): Error {
  const e = err as Error & { $metadata?: { httpStatusCode?: number } };
  if (e.name === 'CredentialsProviderError')
    return new UserError(
      `no AWS credentials to deploy ${name}: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
      { cause: err },
    );
  if (
    e.name === 'AccessDeniedException' ||
    e.name === 'UnrecognizedClientException' ||
    e.name === 'InvalidSignatureException'
  ) {
    return new UserError(
      `AWS refused to deploy ${name} (${e.name}): ${e.message}; see "AWS Lambda" in the README for the permissions needed`,
      { cause: err },
    );
  }
  if (e.$metadata || e.name === 'ResourceConflictException')
    return new UserError(`deploying ${name} failed: ${e.name}: ${e.message}`, { cause: err });
  return e;
}

/** A Lambda function name for a service name: dots become dashes (`go.micro.greeter` -> `go-micro-greeter`). */
export function lambdaName(service: string): string {
  const name = service.replace(/\./g, '-');
  if (!/^[a-zA-Z0-9-_]{1,64}$/.test(name))
    throw new UserError(
      `"${service}" cannot name a Lambda function: up to 64 letters, digits, dashes, underscores (and dots, which become dashes)`,
    );
  return name;
}

async function regionOf(client: LambdaClient): Promise<string> {
  try {
    return await client.config.region();
  } catch (err) {
    throw new UserError('no AWS region: pass --region, or set AWS_REGION (or a region in your AWS profile)', {
      cause: err,
    });
  }
}

function checkLimits({ memory, timeout }: LambdaDeployOptions): void {
  if (memory !== undefined && (!Number.isInteger(memory) || memory < 128 || memory > 10240))
    throw new UserError(`--memory takes 128 to 10240 (MB) on Lambda; got ${memory}`);
  if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1 || timeout > 900))
    throw new UserError(`--timeout takes 1s to 900s on Lambda; got ${timeout}s`);
}

/**
 * Registers the function without a TTL (nothing runs between invocations to refresh it), on a node id that
 * stays the same across deploys; a registration of another version of the service at this address goes.
 */
async function register(
  definition: ServiceDefinition,
  result: LambdaDeployResult,
  endpoint: string | undefined,
  hostEnv: Env,
): Promise<void> {
  const node = {
    id: `${definition.name}-lambda-${result.region}-${result.functionName}`,
    address: result.address,
    metadata: {
      target: 'lambda',
      ...(endpoint ? { [LAMBDA_ENDPOINT_METADATA]: endpoint } : {}),
      // Its handler streams: callers use InvokeWithResponseStream (runtime/plugins/lambda/transport.ts).
      ...(streamsReplies(definition) ? { [LAMBDA_STREAMING_METADATA]: 'true' } : {}),
    },
  };
  const record = deploymentRecord(definition, node);
  const plugins = await resolvePlugins(hostEnv);
  try {
    await registerDeployment(plugins.registry, record);
  } finally {
    await plugins.close();
  }
}
