/**
 * The functions behind the local Lambda API: configurations, code, versions and aliases, and the execution
 * environments that run them. As on Lambda, a create or an update is in progress (State `Pending`,
 * LastUpdateStatus `InProgress`) until it is ready, here: until a fresh environment of the new code and
 * configuration has finished its init; meanwhile another update is refused with 409 and invocations run the
 * previous code. With a record store (serve/state.ts) every change is recorded before it is answered, and the next
 * serve at the same address restores the functions (restore()); without one, state lives as long as serve.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, rmdir, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ServiceRecord } from '../../runtime/core/registry.js';
import { apiErrors, updateInProgress } from './api-error.js';
import {
  fingerprint,
  functionArn,
  lastModified,
  newConfiguration,
  type FunctionConfiguration,
  type Settings,
} from './configuration.js';
import { EnvironmentPool } from './environment-pool.js';
import type { Launcher } from '../launcher.js';
import type { RecordStore, StoredRecord } from '../state.js';
import { PackageTooLarge, unpackZip } from './unpack.js';
import { CodeGone, functionRecord, restoredFunction, type FunctionRecord } from './record.js';
import type { InvocationEvent } from '../observe/event.js';

export interface FunctionsOptions {
  /** Where packages are unpacked, a folder per function and code hash. */
  dir: string;
  /** Environment variables every function gets beneath its own. */
  defaults: Record<string, string>;
  /** Execution environments per function version at once. */
  maxEnvironments: number;
  log(name: string, requestId: string, line: string): void;
  /** Reports each invocation as it ends (serve's request log and stats). */
  invocation?(event: InvocationEvent): void;
  /** Starts the environments' processes, confined (serve's); without it each environment starts its own. */
  launcher?: Launcher;
  /** Where every function is recorded as it changes (record.ts); with it, close() keeps the code for the next serve. */
  store?: RecordStore<FunctionRecord>;
  /** One line on serve's own output: a record that could not be written, a function left out of a restore. */
  say?(line: string): void;
  /** A function was deleted, with the registry entries that named it (serve/lambda/entries.ts removes them). */
  onDeleted?(name: string, entries: readonly ServiceRecord[]): void;
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

/** A function: `$LATEST`, its numbered versions and its aliases. */
export interface LambdaFunction {
  arn: string;
  latest: VersionState;
  versions: Map<string, VersionState>;
  aliases: Map<string, AliasConfiguration>;
  /** The last version number published: deleted numbers are not used again, as on Lambda. */
  lastVersion: number;
  /** The registry entries that name it, kept so serve can register them again after a restart (entries.ts). */
  entries: ServiceRecord[];
  /** Set once DeleteFunction took it away: an environment still starting for it is stopped. */
  deleted?: boolean;
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

  /**
   * CreateFunction: unpacks the code now (a bad zip is refused here), starts its first environment after. With
   * `publish`, version 1 is published with it (Pending as `$LATEST` is, until the environment is ready) and returned.
   */
  async create(
    region: string,
    name: string,
    settings: Settings,
    zipFile: Uint8Array,
    publish = false,
  ): Promise<FunctionConfiguration> {
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
      lastVersion: 0,
      entries: [],
    };
    this.#functions.set(name, fn);
    const published = publish ? this.#newVersion(fn) : undefined;
    this.#settle(fn);
    await this.#save(name, fn);
    return structuredClone(published ?? config);
  }

  /**
   * UpdateFunctionCode, with `Architectures` when given; with `publish`, a version of the new code is published in
   * the same step (in progress as `$LATEST` is) and returned.
   */
  async updateCode(
    name: string,
    zipFile: Uint8Array,
    options: { architectures?: string[]; publish?: boolean } = {},
  ): Promise<FunctionConfiguration> {
    const fn = this.#idle(name);
    const code = await this.#unpack(name, zipFile);
    this.#idle(name); // another update may have begun while this one unpacked
    fn.latest.taskRoot = code.taskRoot;
    const config = this.#update(fn, {
      CodeSha256: code.sha256,
      CodeSize: code.size,
      ...(options.architectures ? { Architectures: options.architectures } : {}),
    });
    // In the same turn as #update's settle began, so the version cannot miss its outcome.
    const published = options.publish ? this.#newVersion(fn) : undefined;
    await this.#save(name, fn);
    return structuredClone(published ?? config);
  }

  /** UpdateFunctionConfiguration, with the settings already merged over the current ones. */
  async updateConfiguration(name: string, settings: Settings): Promise<FunctionConfiguration> {
    const fn = this.#idle(name);
    const config = this.#update(fn, settings);
    await this.#save(name, fn);
    return config;
  }

  /** The configuration of a version or an alias's version (`$LATEST` without a qualifier). */
  get(name: string, qualifier?: string): FunctionConfiguration {
    return this.#resolve(name, qualifier).config;
  }

  /** PublishVersion: a new numbered version of `$LATEST`, unless the last one has the same code and settings. */
  async publish(name: string, codeSha256?: string, description?: string): Promise<FunctionConfiguration> {
    const fn = this.#idle(name);
    const latest = fn.latest.config;
    if (codeSha256 !== undefined && codeSha256 !== latest.CodeSha256) {
      throw apiErrors.preconditionFailed(
        `CodeSHA256 (${codeSha256}) is different from current CodeSHA256 in $LATEST (${latest.CodeSha256}). Please try again with the CodeSHA256 in $LATEST.`,
      );
    }
    const config = this.#newVersion(fn, description);
    await this.#save(name, fn);
    return structuredClone(config);
  }

  /**
   * A numbered version of `$LATEST` as it is now, unless the last one has the same code and settings (then that one).
   * Published during a create or update, it is in that state too until the update settles (#settle).
   */
  #newVersion(fn: LambdaFunction, description?: string): FunctionConfiguration {
    const latest = fn.latest.config;
    const last = [...fn.versions.values()].at(-1);
    if (last && fingerprint(last.config) === fingerprint(latest)) return last.config;
    const version = String(++fn.lastVersion);
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

  /** ListFunctions: `$LATEST` of every function by name, and with `all` each one's versions after it. */
  list(all: boolean): FunctionConfiguration[] {
    return [...this.#functions.keys()]
      .sort()
      .flatMap((name) => (all ? this.versions(name) : [this.#functions.get(name)!.latest.config]));
  }

  /** ListVersionsByFunction: `$LATEST`, then the published versions by number. */
  versions(name: string): FunctionConfiguration[] {
    const fn = this.#function(name);
    return [
      fn.latest,
      ...[...fn.versions.values()].sort((a, b) => Number(a.config.Version) - Number(b.config.Version)),
    ].map((s) => s.config);
  }

  /** GetAlias. */
  alias(name: string, alias: string): AliasConfiguration {
    const fn = this.#function(name);
    const config = fn.aliases.get(alias);
    if (!config) throw apiErrors.notFound(`Cannot find alias arn: ${fn.arn}:${alias}`);
    return config;
  }

  /** ListAliases, by name; with `version`, only those that point at it. */
  aliases(name: string, version?: string): AliasConfiguration[] {
    return [...this.#function(name).aliases.values()]
      .filter((a) => version === undefined || a.FunctionVersion === version)
      .sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
  }

  /** CreateAlias. */
  async createAlias(name: string, alias: string, version: string, description = ''): Promise<AliasConfiguration> {
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
    await this.#save(name, fn);
    return config;
  }

  /** UpdateAlias: points it at another version; environments of versions no alias points at any more stop. */
  async updateAlias(name: string, alias: string, version?: string, description?: string): Promise<AliasConfiguration> {
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
    await this.#save(name, fn);
    return config;
  }

  /**
   * DeleteFunction: the whole function (every version and alias), or with `qualifier` one numbered version no alias
   * points at, in Lambda's words when it cannot be. Invocations already running finish; the code goes after them.
   */
  async delete(region: string, name: string, qualifier?: string): Promise<void> {
    const fn = this.#functions.get(name);
    if (qualifier === '$LATEST')
      throw apiErrors.invalidParameter('$LATEST version cannot be deleted without deleting the function.');
    if (!fn) throw apiErrors.notFound(`Function not found: ${functionArn(region, name)}`);
    if (qualifier !== undefined) return this.#deleteVersion(name, fn, qualifier);
    this.#functions.delete(name);
    fn.deleted = true;
    // The code moves out of the way now (a function created again under this name unpacks where it was) and goes
    // once what runs from it has finished.
    const folder = join(this.#options.dir, name);
    const gone = join(this.#options.dir, `.deleted-${randomUUID()}`);
    const moved = await rename(folder, gone).then(
      () => true,
      () => false,
    );
    await this.#options.store
      ?.remove(name)
      .catch((err: Error) =>
        this.#say(`the record of ${name} could not be removed (${err.message}): a restart of serve would restore it`),
      );
    this.#options.onDeleted?.(name, fn.entries);
    const pools = [fn.latest, ...fn.versions.values()].flatMap((s) => (s.pool ? [s.pool] : []));
    void Promise.allSettled(pools.map((pool) => pool.close())).then(() =>
      moved ? rm(gone, { recursive: true, force: true }).catch(() => {}) : undefined,
    );
  }

  async #deleteVersion(name: string, fn: LambdaFunction, qualifier: string): Promise<void> {
    if (!/^[0-9]+$/.test(qualifier))
      throw apiErrors.invalidParameter('Deletion of aliases is not currently supported.');
    const state = fn.versions.get(qualifier);
    if (!state) throw apiErrors.notFound(`Function not found: ${fn.arn}:${qualifier}`);
    const referencing = [...fn.aliases.values()].filter((a) => a.FunctionVersion === qualifier).map((a) => a.Name);
    if (referencing.length > 0)
      throw apiErrors.conflict(
        `Unable to delete version because the following aliases reference it: [${referencing.join(', ')}]`,
      );
    fn.versions.delete(qualifier);
    await this.#save(name, fn);
    const used = [fn.latest, ...fn.versions.values()].some((s) => s.taskRoot === state.taskRoot);
    void (state.pool?.close() ?? Promise.resolve()).then(() =>
      used ? undefined : rm(state.taskRoot, { recursive: true, force: true }).catch(() => {}),
    );
  }

  /** The names of the functions. */
  names(): string[] {
    return [...this.#functions.keys()];
  }

  /** Whether function `name` exists and `qualifier` (`$LATEST`, a version or an alias; none: `$LATEST`) names a version of it. */
  has(name: string, qualifier?: string): boolean {
    try {
      this.#resolve(name, qualifier);
      return true;
    } catch {
      return false;
    }
  }

  /** The registry entries recorded for function `name` (entries.ts). */
  entries(name: string): readonly ServiceRecord[] {
    return this.#functions.get(name)?.entries ?? [];
  }

  /** Records the registry entries that name function `name`, so the next serve registers them again. */
  async setEntries(name: string, entries: ServiceRecord[]): Promise<void> {
    const fn = this.#functions.get(name);
    if (!fn || JSON.stringify(fn.entries) === JSON.stringify(entries)) return;
    fn.entries = entries;
    await this.#save(name, fn);
  }

  /**
   * Puts back the functions a serve before this one recorded, each checked as a create is (record.ts): their
   * configurations, versions, aliases and code, which must still be where they were unpacked. A record that fails
   * is said and left out. Versions aliases point at start warm; a create or update the crash interrupted starts again.
   */
  async restore(records: readonly StoredRecord<FunctionRecord>[]): Promise<void> {
    for (const { key, value } of records) {
      try {
        const fn = await restoredFunction(key, value, this.#options.dir);
        this.#functions.set(key, fn);
        const { State, LastUpdateStatus } = fn.latest.config;
        if (State === 'Pending' || LastUpdateStatus === 'InProgress') this.#settle(fn);
        for (const alias of fn.aliases.values()) this.#warm(this.#version(fn, alias.FunctionVersion));
      } catch (err) {
        if (err instanceof CodeGone) {
          await this.#options.store?.remove(key).catch(() => {});
          this.#say(`left out the Lambda function ${key}: ${err.message}; its record is removed (deploy it again)`);
        } else
          this.#say(
            `left out the Lambda function ${key}: ${(err as Error).message}; its record is kept and tried again at the next start (a CreateFunction of ${key} replaces it)`,
          );
      }
    }
  }

  /**
   * Removes code folders no function uses any more (a crash between an unpack or a delete and its record), except
   * those of the functions `keep` names (a record that could not be restored this time).
   */
  async sweep(keep: (name: string) => boolean = () => false): Promise<void> {
    const dir = this.#options.dir;
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      if (entry === 'node_modules') continue;
      const fn = this.#functions.get(entry);
      if (!fn) {
        if (keep(entry)) continue;
        await rm(join(dir, entry), { recursive: true, force: true }).catch(() => {});
        continue;
      }
      const used = new Set([fn.latest, ...fn.versions.values()].map((s) => s.taskRoot));
      for (const code of await readdir(join(dir, entry)).catch(() => [] as string[]))
        if (!used.has(join(dir, entry, code)))
          await rm(join(dir, entry, code), { recursive: true, force: true }).catch(() => {});
    }
  }

  #say(line: string): void {
    this.#options.say?.(line);
  }

  /** Records the function as it is now; a failure is said, not thrown: the change is made and serve goes on. */
  async #save(name: string, fn: LambdaFunction): Promise<void> {
    const store = this.#options.store;
    if (!store || fn.deleted) return;
    await store.write(name, functionRecord(fn)).catch((err: Error) => {
      this.#say(
        `the Lambda function ${name} changed, but its record could not be written (${err.message}): a restart of serve would not restore the change`,
      );
    });
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

  /** Stops every environment; removes the unpacked code unless it is recorded (the next serve runs it again). */
  async close(): Promise<void> {
    const pools = [...this.#functions.values()]
      .flatMap((fn) => [fn.latest, ...fn.versions.values()])
      .map((s) => s.pool);
    this.#functions.clear();
    await Promise.allSettled([...pools, ...this.#settling].map((pool) => pool?.close()));
    if (!this.#options.store) await rm(this.#options.dir, { recursive: true, force: true });
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
        if (fn.deleted) return void pool.close();
        const previous = fn.latest.pool;
        fn.latest.pool = pool;
        // A version published with the create or update (Publish: true) settles with it.
        for (const settled of [config, ...this.#unsettled(fn)]) {
          Object.assign(settled, { State: 'Active', LastUpdateStatus: 'Successful' });
          for (const key of ['StateReason', 'StateReasonCode', 'LastUpdateStatusReason'] as const) delete settled[key];
        }
        void previous?.close();
        void this.#save(config.FunctionName, fn);
      },
      (err: Error) => {
        this.#settling.delete(pool);
        void pool.close();
        const reason = `the execution environment could not start: ${err.message}`;
        this.#options.say?.(`the Lambda function ${config.FunctionName}: ${reason}`);
        for (const failed of [config, ...this.#unsettled(fn)]) {
          if (failed.State === 'Pending')
            Object.assign(failed, { State: 'Failed', StateReason: reason, StateReasonCode: 'InternalError' });
          Object.assign(failed, {
            LastUpdateStatus: 'Failed',
            LastUpdateStatusReason: reason,
            LastUpdateStatusReasonCode: 'InternalError',
          });
        }
        void this.#save(config.FunctionName, fn);
      },
    );
  }

  /** The versions published while a create or update was in progress: they take its outcome. */
  #unsettled(fn: LambdaFunction): FunctionConfiguration[] {
    return [...fn.versions.values()]
      .map((s) => s.config)
      .filter((c) => c.State === 'Pending' || c.LastUpdateStatus === 'InProgress');
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
      ended: this.#options.invocation
        ? ({ requestId, ...end }) =>
            this.#options.invocation?.({
              at: Date.now(),
              function: name,
              kind: 'lambda',
              id: requestId,
              started: true,
              ...end,
            })
        : undefined,
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
