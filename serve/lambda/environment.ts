/**
 * A local Lambda execution environment: a process running the official runtime interface client (npm
 * `aws-lambda-ric`) on an unpacked deployment package, pulling events from its own RuntimeApi. It serves
 * any number of invocations one after the other, and like Lambda replaces its process after a timeout, a
 * crash or a failed init. A pool holds several. Never ships inside a function.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../../runtime/core/errors.js';
import { RuntimeApi, type InvokeResult } from './runtime-api.js';

export interface EnvironmentOptions {
  /** The unpacked deployment package (`/var/task` on Lambda), holding `index.mjs`. */
  taskRoot: string;
  functionName: string;
  /** `file.export`; default `index.handler`. */
  handler?: string;
  /** Default 128. */
  memoryMb?: number;
  /** Default `$LATEST`. */
  version?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** Milliseconds an invocation may run unless `invoke` says otherwise; default 3000, Lambda's default. */
  timeoutMs?: number;
  /** The function's environment variables. */
  env?: Readonly<Record<string, string>>;
  /** Receives what the function writes to stdout and stderr (CloudWatch Logs on Lambda); discarded without it. */
  onOutput?: (text: string) => void;
}

/**
 * One execution environment. Its process starts with the environment (warm, as provisioned concurrency is)
 * and again whenever an invocation finds none.
 * @example
 * const env = await LambdaEnvironment.start({ taskRoot: 'dist/helloworld', functionName: 'helloworld' });
 * const result = await env.invoke({ endpoint: 'Greeter.Hello', body: { name: 'Ada' } });
 * // { requestId, payload: '{"body":{"message":"Hello Ada"},"metadata":{...}}' }
 * await env.close();
 */
export class LambdaEnvironment {
  readonly #options: EnvironmentOptions;
  readonly #api: RuntimeApi;
  readonly #ric: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #closing = false;

  private constructor(options: EnvironmentOptions, api: RuntimeApi, ric: string) {
    this.#options = options;
    this.#api = api;
    this.#ric = ric;
  }

  /** Starts the Runtime API and the runtime's process. */
  static async start(options: EnvironmentOptions): Promise<LambdaEnvironment> {
    const ric = runtimeInterfaceClient();
    const region = options.region ?? 'us-east-1';
    let env: LambdaEnvironment | undefined;
    const api = await RuntimeApi.start({
      functionArn: `arn:aws:lambda:${region}:000000000000:function:${options.functionName}`,
      // Lambda stops an environment whose invocation timed out; the next invocation gets a fresh one.
      onTimeout: () => {
        if (env) env.#child?.kill('SIGKILL');
      },
    });
    env = new LambdaEnvironment(options, api, ric);
    env.#spawn();
    return env;
  }

  /** Invocations queued or running here: a pool sends work to the environment with the fewest. */
  get pending(): number {
    return this.#api.pending;
  }

  /** Resolves once the current process has finished its init (see RuntimeApi.initialized): the environment is warm. */
  get initialized(): Promise<void> {
    return this.#api.initialized;
  }

  /** Runs one event (JSON, or the payload's bytes) and resolves with the payload or the error. */
  async invoke(
    event: unknown,
    options: { timeoutMs?: number; requestId?: string; clientContext?: string } = {},
  ): Promise<InvokeResult> {
    if (this.#closing) throw new Error(`the Lambda environment of ${this.#options.functionName} is closed`);
    const result = this.#api.invoke(event, {
      ...options,
      timeoutMs: options.timeoutMs ?? this.#options.timeoutMs ?? 3000,
    });
    // An init error kept from the last start answers the event at once; otherwise someone must take it.
    if (!this.#child && this.#api.pending > 0) this.#spawn();
    return result;
  }

  /** Stops the process and the Runtime API; invocations still queued or running are rejected. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#child?.kill('SIGKILL');
    await this.#exited;
    await this.#api.close();
  }

  #spawn(): void {
    const o = this.#options;
    const memory = o.memoryMb ?? 128;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      ...o.env,
      // Lambda's reserved variables: the function's own cannot override them.
      AWS_LAMBDA_RUNTIME_API: this.#api.address,
      LAMBDA_TASK_ROOT: o.taskRoot,
      LAMBDA_RUNTIME_DIR: dirname(dirname(this.#ric)),
      _HANDLER: o.handler ?? 'index.handler',
      AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
      AWS_LAMBDA_FUNCTION_NAME: o.functionName,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(memory),
      AWS_LAMBDA_FUNCTION_VERSION: o.version ?? '$LATEST',
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${o.functionName}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `local/${process.pid}/${Date.now().toString(36)}`,
      AWS_REGION: o.region ?? 'us-east-1',
      AWS_DEFAULT_REGION: o.region ?? 'us-east-1',
    };
    // The heap capped below the memory size, as Lambda's Node.js runtime does, so a function that would run out
    // of memory there runs out here too. The RIC loads the handler from its working directory.
    const child = spawn(
      process.execPath,
      [`--max-old-space-size=${Math.floor(memory * 0.9)}`, this.#ric, env._HANDLER!],
      {
        cwd: o.taskRoot,
        env,
        stdio: ['ignore', o.onOutput ? 'pipe' : 'ignore', o.onOutput ? 'pipe' : 'ignore'],
      },
    );
    this.#child = child;
    this.#api.runtimeStarting();
    if (o.onOutput)
      for (const stream of [child.stdout!, child.stderr!]) stream.setEncoding('utf8').on('data', o.onOutput);
    const ended = (reason: string): void => {
      if (this.#child !== child) return;
      this.#child = undefined;
      if (this.#closing) return; // close() rejects what is left
      this.#api.runtimeExited(reason);
      // Events still waiting get a fresh process, as Lambda starts a new environment.
      if (this.#api.pending > 0) this.#spawn();
    };
    this.#exited = new Promise((resolve) => {
      child.once('close', () => resolve());
      child.once('error', () => resolve());
    });
    // 'exit' may not follow a failed spawn.
    child.once('error', (err) => ended(`error: ${err.message}`));
    child.once('exit', (code, signal) =>
      ended(signal ? `signal: ${signal === 'SIGKILL' ? 'killed' : signal}` : `exit status ${code}`),
    );
  }
}

/** The RIC's executable: aws-lambda-ric's `bin/index.mjs`; a UserError saying how to get it when it is not installed. */
export function runtimeInterfaceClient(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('aws-lambda-ric/package.json')), 'bin', 'index.mjs');
  } catch {
    throw new UserError(
      'running Lambda functions locally needs the AWS Lambda runtime interface client, which was not built here: install cmake, autoconf, automake, libtool and g++, then npm install aws-lambda-ric',
    );
  }
}
