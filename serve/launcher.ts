/**
 * serve's side of the launcher: the one process every function process is started from (local bundles and Lambda
 * execution environments alike). serve forks it at start with an empty environment, so nothing of serve's shows
 * in a function's /proc/<ppid>/environ; asks it to start each function process; and gets that process's stdout,
 * stderr and message pipe handed over as sockets, so it talks to the function directly (the launcher is not on
 * the way of an invocation). The launcher reports exits and, when a function process ends, ends everything it
 * started (serve/reaper.ts). What a function process runs first is serve/bootstrap.cjs: the function's declared
 * environment reaches it in a hand-over file, not in its process environment, and, when serve runs as root, it
 * drops to the function user before the function loads. The launcher's own code is serve/launcher-process.ts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readdir, rm, stat, symlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { source } from '../adapters/kit/package-root.js';
import type { FunctionUser } from './function-user.js';
import { alive } from './alive.js';

export interface LauncherOptions {
  /** Function processes run as this user (serve must be root); absent: as serve's own user. */
  user?: FunctionUser;
  /** MICRO_FN_HOME: functions that run as another user are handed its registry folder, and nothing else of it. */
  home?: string;
  /** false: never cgroups, even where the system allows them (the /proc sweep ends descendants). Default true. */
  cgroups?: boolean;
}

/** One process to start. */
export interface SpawnSpec {
  /** The module it runs: a bundle, the Lambda runtime interface client. */
  entry: string;
  /** Its arguments (`process.argv.slice(2)`). */
  args?: string[];
  /** Node flags (a heap cap). */
  execArgv?: string[];
  /** The environment the function sees in process.env: handed over in a file, never in the process's own. */
  env: Record<string, string>;
  /** Set as the process starts, so nothing secret: PATH, LANG, TZ. */
  execEnv?: Record<string, string>;
  /** Default: the bundle's folder when the function runs as another user, else serve's. */
  cwd?: string;
  /** A message pipe at fd 3 beside stdout and stderr (local functions; adapters/local/ipc.ts). */
  channel?: boolean;
}

/** How the launcher's process is set up: its one argument, as JSON. */
export interface LauncherConfig {
  /** The private folder: hand-over files (env/), code staged for the function user (code/). */
  run: string;
  /** serve/bootstrap.cjs */
  bootstrap: string;
  user?: { uid: number; gid: number };
  /** A folder handed to every function process as fd 4 (the registry, when functions run as another user). */
  share?: string;
  cgroups: boolean;
}

/** serve → launcher. */
export type ToLauncher = { type: 'spawn'; id: number; spec: SpawnSpec } | { type: 'kill'; id: number };

/** launcher → serve. A `pipe` message carries the process's end of the pipe as its handle. */
export type FromLauncher =
  | { type: 'ready'; cgroups: boolean }
  | { type: 'pipe'; id: number; fd: 1 | 2 | 3 }
  | { type: 'spawned'; id: number; pid: number }
  | { type: 'failed'; id: number; message: string }
  | { type: 'exit'; id: number; code: number | null; signal: string | null };

/** A started process's pipes. */
export interface Pipes {
  pid: number;
  stdout: Socket;
  stderr: Socket;
  /** With `channel`: the message pipe. */
  channel?: Socket;
}

export interface Exit {
  code: number | null;
  signal: string | null;
}

/** The fd number of the shared folder in a function process. */
export const SHARE_FD = 4;

/** A function process started through the launcher. */
export class LaunchedProcess {
  /** Known once started. */
  pid: number | undefined;
  /** Resolves with its pipes once it runs; rejects if it could not be started. */
  readonly started: Promise<Pipes>;
  /** Resolves once it has exited and everything it started has been ended. */
  readonly exit: Promise<Exit>;
  readonly #kill: () => void;

  constructor(started: Promise<Pipes>, exit: Promise<Exit>, kill: () => void) {
    this.started = started;
    this.exit = exit;
    this.#kill = kill;
    started.then((p) => (this.pid = p.pid)).catch(() => {});
  }

  /** SIGKILL to it and everything it started. */
  kill(): void {
    this.#kill();
  }
}

interface Pending {
  pipes: Partial<Pipes>;
  channel: boolean;
  started: { resolve(p: Pipes): void; reject(e: Error): void };
  exit: (e: Exit) => void;
  pid?: number;
}

/**
 * The launcher, from serve's side.
 * @example
 * const launcher = new Launcher({ user: functionUser(), home });
 * await launcher.start();
 * const proc = launcher.spawn({ entry: await launcher.stage(bundle), env: { MICRO_FN_IPC: '1' }, channel: true });
 * const { stdout, channel } = await proc.started;
 * await launcher.close();
 */
export class Launcher {
  readonly options: LauncherOptions;
  #run: string | undefined;
  #config: LauncherConfig | undefined;
  #child: ChildProcess | undefined;
  #cgroups = false;
  #next = 0;
  #closing = false;
  readonly #pending = new Map<number, Pending>();
  /** Code copied for the function user, by source path: the copy and how many use it. */
  readonly #staged = new Map<string, { copy: Promise<{ path: string; folder: string }>; users: number }>();
  #copies = 0;

  constructor(options: LauncherOptions = {}) {
    this.options = options;
  }

  /** The user function processes run as; undefined: serve's own. */
  get user(): FunctionUser | undefined {
    return this.options.user;
  }

  /** Whether each function process has a cgroup of its own (else the /proc sweep ends what it started). */
  get cgroups(): boolean {
    return this.#cgroups;
  }

  /** Makes the private folder and starts the launcher's process. */
  async start(): Promise<void> {
    const { user, home } = this.options;
    await removeStale();
    // mkdtemp makes it 0700. With a function user, its group may pass through (0710): to code/ and home/ only.
    const run = (this.#run = await mkdtemp(join(tmpdir(), `${RUN_PREFIX}${process.pid}-`)));
    if (user) {
      await chown(run, process.getuid?.() ?? 0, user.gid);
      await chmod(run, 0o710);
    }
    await mkdir(join(run, 'env'), { mode: 0o700 });
    await mkdir(join(run, 'code'), { mode: 0o755 });
    let share: string | undefined;
    if (user && home) {
      // Functions of another user reach the registry (to call out) through an open folder: the path to it,
      // MICRO_FN_HOME, stays closed to them. Their MICRO_FN_HOME is run/home, whose `registry` is that folder.
      share = join(home, 'registry');
      await mkdir(share, { recursive: true, mode: 0o755 });
      await mkdir(join(run, 'home'), { mode: 0o755 });
      await symlink(`/proc/self/fd/${SHARE_FD}`, join(run, 'home', 'registry'));
    }
    this.#config = {
      run,
      bootstrap: source('serve/bootstrap.cjs'),
      user: user && { uid: user.uid, gid: user.gid },
      share,
      cgroups: this.options.cgroups !== false,
    };
    await this.#fork(this.#config);
  }

  /** MICRO_FN_HOME as function processes see it: `home` itself, or, for another user, a view of its registry only. */
  functionHome(home: string): string {
    return this.#config?.share ? join(this.#config.run, 'home') : home;
  }

  /**
   * `path` (a bundle file, or a folder such as a Lambda task root) where the function user can read it: itself
   * when functions run as serve's user, else a copy in the private folder (kept until released by every user).
   * `links` are symlinks to make inside a copied folder (`node_modules/@aws-sdk` → micro-fn's) unless it has them.
   */
  async stage(path: string, links: Record<string, string> = {}): Promise<string> {
    if (!this.options.user) return path;
    let known = this.#staged.get(path);
    if (known) known.users++;
    else {
      known = { copy: this.#copy(path, links), users: 1 };
      this.#staged.set(path, known);
      known.copy.catch(() => this.#staged.delete(path));
    }
    return (await known.copy).path;
  }

  /** One user of `path`'s copy is done with it; the last one removes it. */
  async release(path: string): Promise<void> {
    const known = this.#staged.get(path);
    if (!known || --known.users > 0) return;
    this.#staged.delete(path);
    const copy = await known.copy.catch(() => undefined);
    if (copy) await rm(copy.folder, { recursive: true, force: true });
  }

  async #copy(path: string, links: Record<string, string>): Promise<{ path: string; folder: string }> {
    const folder = (await stat(path)).isDirectory();
    const to = join(this.#run!, 'code', String(++this.#copies));
    await cp(folder ? path : dirname(path), to, { recursive: true, verbatimSymlinks: true });
    for (const [at, target] of Object.entries(links)) {
      const link = join(to, at);
      if (await lstat(link).catch(() => undefined)) continue;
      await mkdir(dirname(link), { recursive: true });
      await symlink(target, link);
    }
    await readable(to);
    return { path: folder ? to : join(to, basename(path)), folder: to };
  }

  /** Starts a function process. */
  spawn(spec: SpawnSpec): LaunchedProcess {
    const id = ++this.#next;
    let pending!: Pending;
    const started = new Promise<Pipes>((resolve, reject) => {
      pending = { pipes: {}, channel: spec.channel === true, started: { resolve, reject }, exit: () => {} };
    });
    started.catch(() => {});
    const exit = new Promise<Exit>((resolve) => (pending.exit = resolve));
    this.#pending.set(id, pending);
    this.#hold();
    const child = this.#child;
    if (!child || this.#closing) {
      this.#fail(id, this.#closing ? 'serve is stopping' : 'the launcher is not running');
    } else {
      child.send({ type: 'spawn', id, spec } satisfies ToLauncher);
    }
    return new LaunchedProcess(started, exit, () => {
      // Once close() has disconnected the launcher, it ends every process itself as it exits: a send then would
      // throw ERR_IPC_CHANNEL_CLOSED (an unhandled 'error' that took serve down while it stopped).
      if (this.#pending.has(id) && this.#child?.connected) this.#child.send({ type: 'kill', id } satisfies ToLauncher);
    });
  }

  /** Ends every function process (the launcher does, as it exits), then removes the private folder. */
  async close(): Promise<void> {
    this.#closing = true;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.ref(); // until it has exited
      const exited = new Promise((r) => child.once('exit', r));
      if (child.connected) child.disconnect();
      await exited;
    }
    if (this.#run) await rm(this.#run, { recursive: true, force: true });
  }

  async #fork(config: LauncherConfig): Promise<void> {
    const { file, execArgv } = processEntry();
    const child = fork(file, [JSON.stringify(config)], {
      env: {},
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    this.#child = child;
    // The launcher never keeps serve running by itself; its channel does while a process is being started or runs.
    child.unref();
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the launcher exited (code ${code}) as it started`)));
      child.on('message', (message: FromLauncher, handle?: Socket) => {
        if (message.type === 'ready') ((this.#cgroups = message.cgroups), resolve());
        else this.#receive(message, handle);
      });
    });
    child.once('exit', () => this.#lost(child));
    await ready.finally(() => this.#hold());
  }

  #receive(message: FromLauncher, handle: Socket | undefined): void {
    if (message.type === 'ready') return;
    const pending = this.#pending.get(message.id);
    if (!pending) {
      handle?.destroy();
      return;
    }
    if (message.type === 'pipe' && handle) {
      if (message.fd === 1) pending.pipes.stdout = handle;
      else if (message.fd === 2) pending.pipes.stderr = handle;
      else pending.pipes.channel = handle;
    } else if (message.type === 'spawned') {
      pending.pid = message.pid;
      const { stdout, stderr, channel } = pending.pipes;
      if (!stdout || !stderr || (pending.channel && !channel))
        return void this.#fail(message.id, 'its pipes were not handed over');
      pending.started.resolve({ pid: message.pid, stdout, stderr, channel });
    } else if (message.type === 'failed') {
      this.#fail(message.id, message.message);
    } else if (message.type === 'exit') {
      this.#pending.delete(message.id);
      this.#hold();
      pending.exit({ code: message.code, signal: message.signal });
    }
  }

  /** The channel keeps this process running while a function process is starting or running, and only then. */
  #hold(): void {
    const channel = this.#child?.channel;
    if (this.#pending.size > 0) channel?.ref();
    else channel?.unref();
  }

  #fail(id: number, reason: string): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    this.#hold();
    pending.started.reject(new Error(`the function process could not be started: ${reason}`));
    pending.exit({ code: null, signal: null });
  }

  /**
   * The launcher's process is gone (a bug, or someone killed it): its function processes can no longer be
   * reported or swept, so they are killed here, by process group, and count as killed. The next spawn starts
   * a launcher again.
   */
  #lost(child: ChildProcess): void {
    if (this.#child === child) this.#child = undefined;
    for (const [id, pending] of this.#pending) {
      if (pending.pid !== undefined) for (const pid of [-pending.pid, pending.pid]) kill(pid);
      this.#pending.delete(id);
      pending.started.reject(new Error('the launcher exited'));
      pending.exit({ code: null, signal: 'SIGKILL' });
    }
    if (!this.#closing && this.#config) {
      process.stderr.write('[micro-fn serve] the launcher of function processes exited; starting it again\n');
      void this.#fork(this.#config).catch((err: Error) => process.stderr.write(`[micro-fn serve] ${err.message}\n`));
    }
  }
}

/** The private folders are `<tmp>/micro-fn-launcher-<serve's pid>-<random>`. */
const RUN_PREFIX = 'micro-fn-launcher-';

/** Removes the private folders of serve processes that are gone (killed before their launcher could clean up). */
async function removeStale(): Promise<void> {
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = name.startsWith(RUN_PREFIX) ? Number(name.slice(RUN_PREFIX.length).split('-')[0]) : NaN;
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => {});
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Every file of `dir` readable and every folder passable by anyone who may reach `dir` (the function user). */
async function readable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await readable(path);
    else if (entry.isFile()) await chmod(path, ((await stat(path)).mode & 0o777) | 0o444);
  }
}

/**
 * The launcher's entry: its TypeScript source when serve runs from source (under tsx, whose loader it inherits);
 * dist/cli/launcher.js when it runs built (build.mjs makes it an entry point beside dist/cli/main.js).
 */
function processEntry(): { file: string; execArgv: string[] } {
  const here = import.meta.url;
  if (here.endsWith('.ts'))
    return { file: fileURLToPath(new URL('./launcher-process.ts', here)), execArgv: process.execArgv };
  return { file: fileURLToPath(new URL('./launcher.js', here)), execArgv: [] };
}
