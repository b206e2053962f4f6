/**
 * `micro-fn install lambda-runtime`: builds the official Lambda runtime interface client (npm `aws-lambda-ric`, a
 * native build of a few minutes) into MICRO_FN_HOME/runtimes/lambda/, on demand rather than at every `npm install`.
 * Checks and names its prerequisites first; installs atomically (a build in a `.partial-*` folder, renamed into
 * place once it loads), so an interrupted install is never used; a second run says it is already there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { cp, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { installFolder, isRuntimePackage, RIC_PACKAGE, RIC_VERSION, runtimesFolder } from '../serve/lambda/ric.js';
import { defineCommand } from './command.js';
import { dim, write } from './output.js';
import { alive } from '../serve/alive.js';

/** What can be installed; one entry each. */
const INSTALLABLE = { 'lambda-runtime': installLambdaRuntime } as const;

export const command = defineCommand({
  name: 'install',
  summary: 'install an optional runtime: lambda-runtime (the Lambda runtime interface client serve runs)',
  usage: '<lambda-runtime>',
  description: [
    `lambda-runtime: builds ${RIC_PACKAGE}@${RIC_VERSION} (the official AWS Lambda runtime interface client, which`,
    'micro-fn serve runs Lambda functions under) into MICRO_FN_HOME/runtimes/lambda/. It builds native code: it needs',
    'cmake, make, g++, autoconf, automake, libtool, python3 and Node.js headers, and takes a few minutes, once.',
  ].join('\n'),
  options: {},
  examples: ['micro-fn install lambda-runtime', 'micro-fn install lambda-runtime --json'],
  async run({ positionals, values }) {
    const [what, ...extra] = positionals;
    const names = Object.keys(INSTALLABLE).join(', ');
    if (!what) throw new UserError(`install needs what to install: micro-fn install <${names}>`);
    if (extra.length > 0) throw new UserError(`install takes one name; got ${positionals.join(' ')}`);
    if (!Object.hasOwn(INSTALLABLE, what)) throw new UserError(`micro-fn can install ${names}; got "${what}"`);
    const result = await INSTALLABLE[what as keyof typeof INSTALLABLE](values.json === true);
    await write(
      process.stdout,
      values.json
        ? `${JSON.stringify(result)}\n`
        : `${result.already ? 'already installed' : 'installed'}: ${result.package}@${result.version} in ${result.path}\n`,
    );
    return 0;
  },
});

interface Installed {
  package: string;
  version: string;
  path: string;
  /** It was there before this run. */
  already: boolean;
}

/** Progress goes to stderr, so stdout holds only the result (--json). */
function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function installLambdaRuntime(json: boolean): Promise<Installed> {
  const home = microFnHome(process.env);
  const target = installFolder(home);
  const done = (already: boolean): Installed => ({ package: RIC_PACKAGE, version: RIC_VERSION, path: target, already });
  if (isRuntimePackage(target)) return done(true);

  say(`checking what building ${RIC_PACKAGE}@${RIC_VERSION} needs`);
  const env = { ...process.env, ...(await prerequisites()) };
  const folder = runtimesFolder(home);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await sweepPartials(folder);
  const build = join(folder, `.partial-${process.pid}-${Date.now().toString(36)}`);
  const staged = `${build}-package`;
  try {
    await mkdir(build, { recursive: true });
    const log = join(folder, 'install.log');
    say(`building ${RIC_PACKAGE}@${RIC_VERSION} (native code: a few minutes; its output goes to ${log})`);
    await npmInstall(build, log, env, json);
    const built = join(build, 'node_modules', RIC_PACKAGE);
    if (!isRuntimePackage(built))
      throw new UserError(`npm finished but ${RIC_PACKAGE} has no dist/rapid-client.node; see ${log}`);
    // Only what runs is kept (a few hundred KB); the build tree and node-gyp stay behind.
    await mkdir(staged);
    for (const name of ['bin', 'dist', 'package.json', 'LICENSE', 'NOTICE', 'THIRD-PARTY-LICENSES'])
      if (existsSync(join(built, name))) await cp(join(built, name), join(staged, name), { recursive: true });
    const load = spawnSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(join(staged, 'dist', 'rapid-client.node'))})`],
      // The addon reads the Runtime API's address as it loads (and aborts without one); nothing is connected to.
      { encoding: 'utf8', env: { ...process.env, AWS_LAMBDA_RUNTIME_API: '127.0.0.1:9' }, timeout: 30_000 },
    );
    if (load.status !== 0)
      throw new UserError(`the built ${RIC_PACKAGE} does not load in this Node.js: ${lastLine(load.stderr)}`);
    try {
      await rename(staged, target);
    } catch (err) {
      // Another install finished first: its copy is as good.
      if (!isRuntimePackage(target)) throw err;
      return done(true);
    }
    return done(false);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`installing ${RIC_PACKAGE} failed: ${(err as Error).message}`);
  } finally {
    await rm(build, { recursive: true, force: true });
    await rm(staged, { recursive: true, force: true });
  }
}

/**
 * Checks the tools the native build runs (the package's scripts build curl with autotools and aws-lambda-cpp with
 * cmake; node-gyp builds the addon with python3, make and g++) and that node-gyp can get Node's headers. Returns what
 * the build's environment needs added: `npm_config_nodedir` when the headers are beside this Node but npm was not
 * told.
 */
async function prerequisites(): Promise<Record<string, string>> {
  if (process.platform !== 'linux')
    throw new UserError(
      `${RIC_PACKAGE} builds on Linux only (its native part needs Linux); run Lambda functions locally on Linux`,
    );
  const tools: [command: string[], pkg: string][] = [
    [['cmake', 'cmake3'], 'cmake'],
    [['make'], 'make'],
    [['g++', 'c++'], 'g++'],
    [['autoreconf'], 'autoconf'],
    [['automake'], 'automake'],
    [['libtoolize'], 'libtool'],
    [['python3'], 'python3'],
  ];
  const missing = tools.filter(([commands]) => !commands.some(onPath)).map(([, pkg]) => pkg);
  if (!onPath('npm')) missing.push('npm');
  if (missing.length > 0)
    throw new UserError(
      `building ${RIC_PACKAGE} needs ${missing.join(', ')}, not found on PATH: install them (Debian/Ubuntu: apt-get install ${missing.join(' ')}), then run micro-fn install lambda-runtime again`,
    );
  return headers();
}

/** Where node-gyp finds Node's headers: npm's `nodedir`, its cache, beside this Node, else a download. */
async function headers(): Promise<Record<string, string>> {
  const has = (dir: string) => existsSync(join(dir, 'include', 'node', 'common.gypi'));
  const nodedir = process.env.npm_config_nodedir || npmConfig('nodedir');
  if (nodedir) {
    if (has(nodedir)) return {};
    throw new UserError(
      `npm's nodedir (${nodedir}) holds no Node.js headers (include/node/common.gypi): point npm_config_nodedir at a folder that does, or unset it`,
    );
  }
  const version = process.versions.node;
  const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'node-gyp', version);
  if (has(cache)) return {};
  const beside = dirname(dirname(process.execPath));
  if (has(beside)) return { npm_config_nodedir: beside };
  const url =
    process.release.headersUrl ?? `https://nodejs.org/download/release/v${version}/node-v${version}-headers.tar.gz`;
  const reason = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(15_000) }).then(
    (res) => (res.ok ? undefined : `HTTP ${res.status}`),
    (err: Error) => (err.cause as Error | undefined)?.message ?? err.message,
  );
  if (reason)
    throw new UserError(
      `node-gyp needs the Node.js ${version} headers, which are not cached and cannot be fetched from ${url} (${reason}): unpack that file somewhere and set npm_config_nodedir to its folder (or install your distribution's Node.js headers, e.g. Debian's libnode-dev), then run micro-fn install lambda-runtime again`,
    );
  return {};
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, command)));
}

function npmConfig(key: string): string | undefined {
  const r = spawnSync('npm', ['config', 'get', key], { encoding: 'utf8' });
  const value = r.status === 0 ? r.stdout.trim() : '';
  return value === '' || value === 'undefined' || value === 'null' ? undefined : value;
}

/** Runs npm into `prefix`, its output to `log`; a line of progress every 15 s; the log's end when it fails. */
async function npmInstall(prefix: string, log: string, env: NodeJS.ProcessEnv, quiet: boolean): Promise<void> {
  const out = createWriteStream(log);
  const child = spawn(
    'npm',
    [
      'install',
      '--prefix',
      prefix,
      '--no-save',
      '--no-package-lock',
      '--no-audit',
      '--no-fund',
      '--foreground-scripts',
      `${RIC_PACKAGE}@${RIC_VERSION}`,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let last = '';
  let tail: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8').on('data', (text: string) => {
      out.write(text);
      const lines = text.split('\n').filter((l) => l.trim() !== '');
      if (lines.length > 0) last = lines.at(-1)!;
      tail = [...tail, ...lines].slice(-20);
    });
  }
  const started = Date.now();
  const timer = setInterval(() => {
    if (!quiet || process.stderr.isTTY)
      say(dim(`  ${Math.round((Date.now() - started) / 1000)} s: ${last.trim().slice(0, 100)}`));
  }, 15_000);
  // Ctrl-C reaches npm too (same process group); the partial folder goes with this process or with the next run.
  const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  }).finally(() => clearInterval(timer));
  await new Promise((resolve) => out.end(resolve));
  if (code !== 0) {
    process.stderr.write(`${tail.join('\n')}\n`);
    throw new UserError(
      `npm install ${RIC_PACKAGE}@${RIC_VERSION} failed (${signal ? `signal ${signal}` : `exit ${code}`}); its last lines are above`,
    );
  }
  say(`built in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** Removes `.partial-<pid>-*` folders left by installs whose process is gone (killed mid-build). */
async function sweepPartials(folder: string): Promise<void> {
  for (const name of await readdir(folder).catch(() => [] as string[])) {
    const pid = /^\.partial-(\d+)-/.exec(name)?.[1];
    if (pid && !alive(Number(pid))) await rm(join(folder, name), { recursive: true, force: true });
  }
}

function lastLine(text: string): string {
  return (
    text
      .trim()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .at(-1) ?? 'no output'
  );
}
