/**
 * Where the official Lambda runtime interface client (npm `aws-lambda-ric`, the RIC) is installed and found. It is
 * not a dependency of micro-fn: its native part takes minutes to build, so `micro-fn install lambda-runtime`
 * (cli/install.ts) builds it on demand, as Playwright installs browsers, and keeps only what runs: the package's
 * `bin/`, `dist/` (with the native `rapid-client.node`) and `package.json`, in a folder named after the version.
 * Never ships inside a function.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { UserError } from '../../runtime/core/errors.js';
import { microFnHome } from '../../runtime/plugins/local/home.js';

/** The package and the version `micro-fn install lambda-runtime` installs (the one the tests run). */
export const RIC_PACKAGE = 'aws-lambda-ric';
export const RIC_VERSION = '3.3.0';

/** The command that installs it; every message about a missing runtime names it. */
export const INSTALL_COMMAND = 'micro-fn install lambda-runtime';

/** The folder under a MICRO_FN_HOME that holds installed Lambda runtimes, one folder per version. */
export function runtimesFolder(home: string): string {
  return join(home, 'runtimes', 'lambda');
}

/** Where `micro-fn install lambda-runtime` puts the pinned version under `home`: the package's own folder. */
export function installFolder(home: string): string {
  return join(runtimesFolder(home), `${RIC_PACKAGE}@${RIC_VERSION}`);
}

/** Whether `dir` holds a usable RIC package: its executable and its native part. */
export function isRuntimePackage(dir: string): boolean {
  return existsSync(join(dir, 'bin', 'index.mjs')) && existsSync(join(dir, 'dist', 'rapid-client.node'));
}

/** A RIC that was found: the package folder and where the lookup found it. */
export interface FoundRuntime {
  /** The package folder: `bin/index.mjs` is its executable. */
  dir: string;
  /** Which step of the lookup order found it (`MICRO_FN_LAMBDA_RUNTIME`, `MICRO_FN_HOME`, `~/.micro-fn`, `node_modules`). */
  from: string;
  version: string;
  /**
   * Installed under a MICRO_FN_HOME, which only its owner may enter: a function user reads a staged copy (a few
   * hundred KB). Elsewhere (node_modules, MICRO_FN_LAMBDA_RUNTIME) it is used in place, as a package whose build
   * tree may weigh 150 MB would be copied otherwise.
   */
  private: boolean;
}

/**
 * Finds the RIC, first match wins: `MICRO_FN_LAMBDA_RUNTIME` (a package folder, or a folder whose
 * `node_modules/aws-lambda-ric` is one; set but unusable is an error, never skipped), then the pinned version under
 * `MICRO_FN_HOME/runtimes/lambda/`, then under `~/.micro-fn/runtimes/lambda/` (so a process with a MICRO_FN_HOME of
 * its own, a test's temp folder, finds the one installed for the user), then an `aws-lambda-ric` that Node resolves
 * from micro-fn's own folder (installed by hand). Undefined when none is there.
 */
export function findRuntime(env: Readonly<Record<string, string | undefined>> = process.env): FoundRuntime | undefined {
  const given = env.MICRO_FN_LAMBDA_RUNTIME;
  if (given && given.trim() !== '') {
    const dir = [resolve(given), join(resolve(given), 'node_modules', RIC_PACKAGE)].find(isRuntimePackage);
    if (!dir)
      throw new UserError(
        `MICRO_FN_LAMBDA_RUNTIME=${given} holds no built ${RIC_PACKAGE} (bin/index.mjs and dist/rapid-client.node): point it at one, or unset it and run ${INSTALL_COMMAND}`,
      );
    return { dir, from: 'MICRO_FN_LAMBDA_RUNTIME', version: versionOf(dir), private: false };
  }
  const homes = [
    { home: microFnHome(env), from: 'MICRO_FN_HOME' },
    { home: join(homedir(), '.micro-fn'), from: '~/.micro-fn' },
  ];
  for (const { home, from } of homes) {
    const dir = installFolder(home);
    if (isRuntimePackage(dir)) return { dir, from, version: RIC_VERSION, private: true };
  }
  try {
    const dir = dirname(createRequire(import.meta.url).resolve(`${RIC_PACKAGE}/package.json`));
    if (isRuntimePackage(dir)) return { dir, from: 'node_modules', version: versionOf(dir), private: false };
  } catch {
    // not installed beside micro-fn: the usual case
  }
  return undefined;
}

/** The RIC found (see findRuntime); a UserError naming the command that installs it when there is none. */
export function requireRuntime(env: Readonly<Record<string, string | undefined>> = process.env): FoundRuntime {
  const found = findRuntime(env);
  if (found) return found;
  throw new UserError(
    `running Lambda functions locally needs the AWS Lambda runtime interface client, which is not installed: run ${INSTALL_COMMAND}`,
  );
}

function versionOf(dir: string): string {
  try {
    const version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}
