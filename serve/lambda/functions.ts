/**
 * The functions behind the local Lambda API: configurations, code, versions and aliases, and the execution
 * environments that run them. As on Lambda, a create or an update is in progress (State `Pending`,
 * LastUpdateStatus `InProgress`) until it is ready, here: until a fresh environment of the new code and
 * configuration has finished its init; meanwhile another update is refused with 409 and invocations run the
 * previous code. State lives as long as `micro-fn serve`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, rename, rm, rmdir, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { apiErrors, updateInProgress } from './api-error.js';
import {
  fingerprint,
  lastModified,
  newConfiguration,
  type FunctionConfiguration,
  type Settings,
} from './configuration.js';
import { EnvironmentPool } from './environment-pool.js';
import type { Launcher } from '../launcher.js';
import { PackageTooLarge, unpackZip } from './unpack.js';

export interface FunctionsOptions {
  /** Where packages are unpacked, a folder per function and code hash. */
  dir: string;
  /** Environment variables every function gets beneath its own. */
  defaults: Record<string, string>;
  /** Execution environments per function version at once. */
  maxEnvironments: number;
  log(name: string, requestId: string, line: string): void;
  /** Starts the environments' processes, confined (serve's); without it each environment starts its own. */
  launcher?: Launcher;
}

/** A version of a function (`$LATEST` or a number): its configuration, where its code is, its environments. */
export interface VersionState {
  config: FunctionConfiguration;
  taskRoot: string;
  pool?: EnvironmentPool;
}

/** Lambda's `AliasConfiguration`. */
export interface AliasConfiguration {
  AliasArn: string;
  Name: string;
  FunctionVersion: string;
  Description: string;
  RevisionId: string;
}

interface LambdaFunction {
  arn: string;
  latest: VersionState;
  versions: Map<string, VersionState>;
  aliases: Map<string, AliasConfiguration>;
}

const ALIAS = /^(?!^[0-9]+$)[a-zA-Z0-9-_]{1,128}$/;

/** The functions of one local Lambda API, by name. */
export class Functions {
  readonly #options: FunctionsOptions;
  readonly #functions = new Map<string, LambdaFunction>();
  #sdkLinked: Promise<void> | undefined;
  /** Environments starting for creates and updates, so close() stops them too. */
  readonly #settling = new Set<EnvironmentPool>();

  constructor(options: FunctionsOptions) {
    this.#options = options;
  }

  /** CreateFunction: unpacks the code now (a bad zip is refused here), starts its first environment after. */
  async create(region: string, name: string, settings: Settings, zipFile: Uint8Array): Promise<FunctionConfiguration> {
    if (!/^[a-zA-Z0-9-_]{1,64}$/.test(name))
      throw apiErrors.invalidParameter(
        `FunctionName must be 1 to 64 letters, digits, dashes or underscores; got "${name}"`,
      );
    if (this.#functions.has(name)) throw apiErrors.conflict(`Function already exist: ${name}`);
    const code = await this.#unpack(name, zipFile);
    const config = newConfiguration(region, name, settings, code);
    const fn: LambdaFunction = {
      arn: config.FunctionArn,
      latest: { config, taskRoot: code.taskRoot },
      versions: new Map(),
      aliases: new Map(),
    };
    this.#functions.set(name, fn);
    this.#settle(fn);
    return config;
  }

  /** UpdateFunctionCode. */
  async updateCode(name: string, zipFile: Uint8Array): Promise<FunctionConfiguration> {
    const fn = this.#idle(name);
    const code = await this.#unpack(name, zipFile);
    this.#idle(name); // another update may have begun while this one unpacked
    fn.latest.taskRoot = code.taskRoot;
    return this.#update(fn, { CodeSha256: code.sha256, CodeSize: code.size });
  }

  /** UpdateFunctionConfiguration, with the settings already merged over the current ones. */
  updateConfiguration(name: string, settings: Settings): FunctionConfiguration {
    return this.#update(this.#idle(name), settings);
  }

  /** The configuration of a version or an alias's version (`$LATEST` without a qualifier). */
  get(name: string, qualifier?: string): FunctionConfiguration {
    return this.#resolve(name, qualifier).config;
  }

  /** PublishVersion: a new numbered version of `$LATEST`, unless the last one has the same code and settings. */
  publish(name: string, codeSha256?: string, description?: string): FunctionConfiguration {
    const fn = this.#idle(name);
    const latest = fn.latest.config;
    if (codeSha256 !== undefined && codeSha256 !== latest.CodeSha256) {
      throw apiErrors.preconditionFailed(
        `CodeSHA256 (${codeSha256}) is different from current CodeSHA256 in $LATEST (${latest.CodeSha256}). Please try again with the CodeSHA256 in $LATEST.`,
      );
    }
    const last = [...fn.versions.values()].at(-1);
    if (last && fingerprint(last.config) === fingerprint(latest)) return last.config;
    const version = String(fn.versions.size + 1);
    const config: FunctionConfiguration = {
      ...structuredClone(latest),
      FunctionArn: `${fn.arn}:${version}`,
      Version: version,
      Description: description ?? latest.Description,
      RevisionId: randomUUID(),
      LastModified: lastModified(),
    };
    fn.versions.set(version, { config, taskRoot: fn.latest.taskRoot });
    return config;
  }

  /** CreateAlias. */
  createAlias(name: string, alias: string, version: string, description = ''): AliasConfiguration {
    const fn = this.#function(name);
    if (!ALIAS.test(alias))
      throw apiErrors.invalidParameter(
        `Name must be letters, digits, dashes or underscores, not only digits; got "${alias}"`,
      );
    if (fn.aliases.has(alias)) throw apiErrors.conflict(`Alias already exists: ${fn.arn}:${alias}`);
    this.#warm(this.#version(fn, version));
    const config: AliasConfiguration = {
      AliasArn: `${fn.arn}:${alias}`,
      Name: alias,
      FunctionVersion: version,
      Description: description,
      RevisionId: randomUUID(),
    };
    fn.aliases.set(alias, config);
    return config;
  }

  /** UpdateAlias: points it at another version; environments of versions no alias points at any more stop. */
  updateAlias(name: string, alias: string, version?: string, description?: string): AliasConfiguration {
    const fn = this.#function(name);
    const current = fn.aliases.get(alias);
    if (!current) throw apiErrors.notFound(`Alias not found: ${fn.arn}:${alias}`);
    if (version !== undefined) this.#warm(this.#version(fn, version));
    const config: AliasConfiguration = {
      ...current,
      FunctionVersion: version ?? current.FunctionVersion,
      Description: description ?? current.Description,
      RevisionId: randomUUID(),
    };
    fn.aliases.set(alias, config);
    const used = new Set([...fn.aliases.values()].map((a) => a.FunctionVersion));
    for (const [number, state] of fn.versions) {
      if (state.pool && !used.has(number)) void state.pool.close();
      if (!used.has(number)) state.pool = undefined;
    }
    return config;
  }

  /** Starts an environment of a version an alias now points at, so the first invocation finds it warm. */
  #warm(state: VersionState): void {
    if (state.pool || state.config.State !== 'Active') return;
    state.pool = this.#pool(state.config, state.taskRoot);
    void state.pool.warm().catch(() => {});
  }

  /**
   * The version to invoke and its environments: `$LATEST`, a number or an alias. A function still being created
   * cannot be invoked (409, as on Lambda); during an update `$LATEST` runs the previous code.
   */
  invocable(name: string, qualifier?: string): { config: FunctionConfiguration; pool: EnvironmentPool } {
    const state = this.#resolve(name, qualifier);
    const { config } = state;
    if (config.State !== 'Active') {
      throw apiErrors.conflict(
        `The operation cannot be performed at this time. The function is currently in the following state: ${config.State}`,
      );
    }
    state.pool ??= this.#pool(config, state.taskRoot);
    return { config, pool: state.pool };
  }

  /** Stops every environment and removes the unpacked code. */
  async close(): Promise<void> {
    const pools = [...this.#functions.values()]
      .flatMap((fn) => [fn.latest, ...fn.versions.values()])
      .map((s) => s.pool);
    this.#functions.clear();
    await Promise.allSettled([...pools, ...this.#settling].map((pool) => pool?.close()));
    await rm(this.#options.dir, { recursive: true, force: true });
  }

  #function(name: string): LambdaFunction {
    const fn = this.#functions.get(name);
    if (!fn) throw apiErrors.notFound(`Function not found: ${name}`);
    return fn;
  }

  /** The function, if no create or update of it is in progress. */
  #idle(name: string): LambdaFunction {
    const fn = this.#function(name);
    const { State, LastUpdateStatus } = fn.latest.config;
    if (State === 'Pending' || LastUpdateStatus === 'InProgress') throw updateInProgress(fn.arn);
    return fn;
  }

  #version(fn: LambdaFunction, version: string): VersionState {
    const state = version === '$LATEST' ? fn.latest : fn.versions.get(version);
    if (!state) throw apiErrors.notFound(`Function not found: ${fn.arn}:${version}`);
    return state;
  }

  #resolve(name: string, qualifier?: string): VersionState {
    const fn = this.#function(name);
    if (qualifier === undefined || qualifier === '$LATEST' || /^[0-9]+$/.test(qualifier))
      return this.#version(fn, qualifier ?? '$LATEST');
    const alias = fn.aliases.get(qualifier);
    if (!alias) throw apiErrors.notFound(`Function not found: ${fn.arn}:${qualifier}`);
    return this.#version(fn, alias.FunctionVersion);
  }

  #update(fn: LambdaFunction, changes: Partial<FunctionConfiguration>): FunctionConfiguration {
    const config = fn.latest.config;
    Object.assign(config, changes, {
      LastModified: lastModified(),
      RevisionId: randomUUID(),
      LastUpdateStatus: 'InProgress',
      LastUpdateStatusReason: 'The function is being updated.',
    });
    delete config.LastUpdateStatusReasonCode;
    this.#settle(fn);
    return structuredClone(config);
  }

  /**
   * Starts an environment of `$LATEST` as it is now; once its init is over the create or update is done, the
   * new environments take over and the previous ones finish what they run, then stop.
   */
  #settle(fn: LambdaFunction): void {
    const config = fn.latest.config;
    const pool = this.#pool(structuredClone(config), fn.latest.taskRoot);
    this.#settling.add(pool);
    void pool.warm().then(
      () => {
        this.#settling.delete(pool);
        const previous = fn.latest.pool;
        fn.latest.pool = pool;
        Object.assign(config, { State: 'Active', LastUpdateStatus: 'Successful' });
        for (const key of ['StateReason', 'StateReasonCode', 'LastUpdateStatusReason'] as const) delete config[key];
        void previous?.close();
      },
      (err: Error) => {
        this.#settling.delete(pool);
        void pool.close();
        const reason = `the execution environment could not start: ${err.message}`;
        if (config.State === 'Pending')
          Object.assign(config, { State: 'Failed', StateReason: reason, StateReasonCode: 'InternalError' });
        Object.assign(config, {
          LastUpdateStatus: 'Failed',
          LastUpdateStatusReason: reason,
          LastUpdateStatusReasonCode: 'InternalError',
        });
      },
    );
  }

  #pool(config: FunctionConfiguration, taskRoot: string): EnvironmentPool {
    const { FunctionName: name, FunctionArn } = config;
    return new EnvironmentPool({
      taskRoot,
      functionName: name,
      handler: config.Handler,
      memoryMb: config.MemorySize,
      timeoutMs: config.Timeout * 1000,
      version: config.Version,
      region: FunctionArn.split(':')[3],
      env: { ...this.#options.defaults, ...config.Environment?.Variables },
      max: this.#options.maxEnvironments,
      launcher: this.#options.launcher,
      log: (line, requestId) => this.#options.log(name, requestId, line),
    });
  }

  /**
   * Unpacks a package into a folder named after its hash (kept while any version uses it), as a stream within
   * Lambda's limits (unpack.ts); a refused or broken package leaves nothing behind.
   */
  async #unpack(name: string, zipFile: Uint8Array): Promise<{ sha256: string; size: number; taskRoot: string }> {
    await (this.#sdkLinked ??= linkSdk(this.#options.dir));
    const hash = createHash('sha256').update(zipFile).digest();
    const folder = join(this.#options.dir, name);
    const taskRoot = join(folder, hash.toString('hex').slice(0, 32));
    const scratch = `${taskRoot}.${randomUUID()}`;
    try {
      await unpackZip(zipFile, scratch);
    } catch (err) {
      await rm(scratch, { recursive: true, force: true });
      await rmdir(folder).catch(() => {}); // only when empty: another version's code stays
      if (err instanceof PackageTooLarge) throw apiErrors.invalidParameter(err.message);
      throw apiErrors.invalidParameter(
        `Could not unzip uploaded file. Please check your file, then try to upload again. (${(err as Error).message})`,
      );
    }
    // Equal code unpacks to the same folder: the first one there wins, the copy goes.
    await rename(scratch, taskRoot).catch(() => rm(scratch, { recursive: true, force: true }));
    return { sha256: hash.toString('base64'), size: zipFile.byteLength, taskRoot };
  }
}

/**
 * Lambda's Node.js runtime provides the AWS SDK v3 to functions, and their bundles leave it out; so functions
 * here find the `@aws-sdk` packages micro-fn has, through `<dir>/node_modules` (a parent of every task root).
 * Without them installed, a function that imports the SDK fails as it would on a runtime without it.
 */
async function linkSdk(dir: string): Promise<void> {
  try {
    const scope = dirname(dirname(createRequire(import.meta.url).resolve('@aws-sdk/client-lambda/package.json')));
    await mkdir(join(dir, 'node_modules'), { recursive: true });
    await symlink(scope, join(dir, 'node_modules', '@aws-sdk'), 'dir');
  } catch {
    // not installed, or linked already
  }
}
