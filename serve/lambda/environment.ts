/**
 * A local Lambda execution environment: a process running the official runtime interface client (npm
 * `aws-lambda-ric`) on an unpacked deployment package, pulling events from its own RuntimeApi. It serves
 * any number of invocations one after the other, and like Lambda replaces its process after a timeout, a
 * crash or a failed init. A pool holds several. Its process is a function process like a local one: started
 * through serve's launcher (serve/launcher.ts), with the function's variables handed over rather than in its
 * process environment, as the function user, and everything it starts ended with it. Never ships inside a function.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Launcher, type LaunchedProcess } from '../launcher.js';
import { requireRuntime } from './ric.js';
import { RuntimeApi, type InvokeResult, type StreamingInvokeResult } from './runtime-api.js';

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
  /** serve's launcher; without it the environment starts one of its own (as serve's user) and stops it on close. */
  launcher?: Launcher;
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
  readonly #launcher: Launcher;
  /** The launcher is this environment's own: closed with it. */
  readonly #ownLauncher: boolean;
  /** The task root where the function user can read it. */
  readonly #taskRoot: string;
  /** The RIC's package folder when it was staged (the copy is released with the environment). */
  readonly #ricPackage: string | undefined;
  #child: LaunchedProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #closing = false;

  private constructor(
    options: EnvironmentOptions,
    api: RuntimeApi,
    ric: string,
    launcher: { launcher: Launcher; own: boolean; taskRoot: string; ricPackage: string | undefined },
  ) {
    this.#options = options;
    this.#api = api;
    this.#ric = ric;
    this.#launcher = launcher.launcher;
    this.#ownLauncher = launcher.own;
    this.#taskRoot = launcher.taskRoot;
    this.#ricPackage = launcher.ricPackage;
  }

  /** Starts the Runtime API and the runtime's process. */
  static async start(options: EnvironmentOptions): Promise<LambdaEnvironment> {
    const found = requireRuntime();
    const ricPackage = found.dir;
    const own = options.launcher === undefined;
    const launcher = options.launcher ?? new Launcher();
    if (own) await launcher.start();
    // As on Lambda, the runtime provides the AWS SDK: a copy of the task root for the function user links micro-fn's.
    // The RIC installed under a MICRO_FN_HOME (mode 0700) is staged too: the function user could not read it there.
    let ric: string | undefined;
    const taskRoot = await (found.private ? launcher.stage(ricPackage) : Promise.resolve(ricPackage))
      .then((staged) => (ric = join(staged, 'bin', 'index.mjs')))
      .then(() => launcher.stage(options.taskRoot, sdkLink()))
      .catch(async (err: unknown) => {
        if (ric && found.private) await launcher.release(ricPackage);
        if (own) await launcher.close();
        throw err;
      });
    const region = options.region ?? 'us-east-1';
    let env: LambdaEnvironment | undefined;
    const api = await RuntimeApi.start({
      functionArn: `arn:aws:lambda:${region}:000000000000:function:${options.functionName}`,
      // Lambda stops an environment whose invocation timed out; the next invocation gets a fresh one.
      onTimeout: () => {
        if (env) env.#child?.kill();
      },
    });
    env = new LambdaEnvironment(options, api, ric!, {
      launcher,
      own,
      taskRoot,
      ricPackage: found.private ? ricPackage : undefined,
    });
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

  /** As `invoke`, resolving with a response the function streams as soon as it begins (RuntimeApi.invokeStreaming). */
  async invokeStreaming(
    event: unknown,
    options: { timeoutMs?: number; requestId?: string; clientContext?: string } = {},
  ): Promise<StreamingInvokeResult> {
    if (this.#closing) throw new Error(`the Lambda environment of ${this.#options.functionName} is closed`);
    const result = this.#api.invokeStreaming(event, {
      ...options,
      timeoutMs: options.timeoutMs ?? this.#options.timeoutMs ?? 3000,
    });
    if (!this.#child && this.#api.pending > 0) this.#spawn();
    return result;
  }

  /** Stops the process and the Runtime API; invocations still queued or running are rejected. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#child?.kill();
    await this.#exited;
    await this.#api.close();
    await this.#launcher.release(this.#options.taskRoot);
    if (this.#ricPackage) await this.#launcher.release(this.#ricPackage);
    if (this.#ownLauncher) await this.#launcher.close();
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
      LAMBDA_TASK_ROOT: this.#taskRoot,
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
    const child = this.#launcher.spawn({
      // --enable-source-maps: the package's index.mjs.map maps stack traces to the sources, as on Lambda with
      // NODE_OPTIONS=--enable-source-maps; Node reads the map as the handler loads, once per environment.
      execArgv: [`--max-old-space-size=${Math.floor(memory * 0.9)}`, '--enable-source-maps'],
      entry: this.#ric,
      args: [env._HANDLER!],
      env,
      // What Node and the C library read as the process starts; nothing secret.
      execEnv: { PATH: env.PATH!, LANG: env.LANG!, TZ: env.TZ! },
      cwd: this.#taskRoot,
    });
    this.#child = child;
    this.#api.runtimeStarting();
    const ended = (reason: string): void => {
      if (this.#child !== child) return;
      this.#child = undefined;
      if (this.#closing) return; // close() rejects what is left
      this.#api.runtimeExited(reason);
      // Events still waiting get a fresh process, as Lambda starts a new environment.
      if (this.#api.pending > 0) this.#spawn();
    };
    // Output is read to its end before the process counts as gone.
    const output = child.started.then(
      ({ stdout, stderr }) =>
        Promise.all(
          [stdout, stderr].map((stream) => {
            stream.on('error', () => {});
            if (o.onOutput) stream.setEncoding('utf8').on('data', o.onOutput);
            else stream.resume();
            return new Promise((resolve) => stream.once('close', resolve));
          }),
        ),
      (err: Error) => ended(`error: ${err.message}`),
    );
    this.#exited = child.exit
      .then(() => Promise.race([output, new Promise((r) => setTimeout(r, 2000))]))
      .then(() => {});
    void child.exit.then(({ code, signal }) =>
      ended(signal ? `signal: ${signal === 'SIGKILL' ? 'killed' : signal}` : `exit status ${code}`),
    );
  }
}

/**
 * The RIC's executable (`bin/index.mjs` of the package serve/lambda/ric.ts finds); a UserError naming
 * `micro-fn install lambda-runtime` when it is not installed.
 */
export function runtimeInterfaceClient(): string {
  return join(requireRuntime().dir, 'bin', 'index.mjs');
}

/** Where the function finds the AWS SDK in a copy of its task root: micro-fn's own (none when it is not installed). */
function sdkLink(): Record<string, string> {
  try {
    const scope = dirname(dirname(createRequire(import.meta.url).resolve('@aws-sdk/client-lambda/package.json')));
    return { 'node_modules/@aws-sdk': scope };
  } catch {
    return {};
  }
}
