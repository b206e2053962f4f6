/**
 * The launcher's process (serve/launcher.ts is serve's side): forked by serve with an empty environment, it starts
 * every function process, hands each one's pipes to serve, ends everything a function process started when it ends
 * (serve/reaper.ts), and reports the exit. It outlives nothing: when serve goes (even killed), its IPC channel
 * closes, and it ends every function process and removes the private folder before it exits. Signals meant for
 * serve's terminal (Ctrl-C) do not stop it: serve stops it when serve is done.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { FromLauncher, LauncherConfig, SpawnSpec, ToLauncher } from './launcher.js';
import { PROCESS_MARKER, Reaper, type Tracked } from './reaper.js';

interface Running {
  child: ChildProcess;
  tracked: Tracked;
  handover: string;
}

/**
 * Closes what this process inherited from serve without close-on-exec, which every function would inherit in turn:
 * files a native library opened in serve (the LMDB store of serve's broker keeps its data file so), or whatever
 * serve's own parent left open. Node opens all of its own with close-on-exec. Linux (/proc); elsewhere a no-op.
 */
function closeInherited(): void {
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return;
  }
  for (const name of fds) {
    const fd = Number(name);
    if (!(fd > 3)) continue; // stdin, stdout, stderr, and fd 3: the channel to serve
    try {
      const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & O_CLOEXEC) === 0) closeSync(fd);
    } catch {
      // gone already (the directory's own descriptor)
    }
  }
}

const O_CLOEXEC = 0o2000000;
closeInherited();

const config = JSON.parse(process.argv[2] ?? '{}') as LauncherConfig;
const reaper = new Reaper({ cgroups: config.cgroups, uid: config.user?.uid });
const share = config.share === undefined ? undefined : openSync(config.share, 'r');
const running = new Map<number, Running>();
let stopping = false;

/** To serve, while it listens: after it has gone there is no one to tell (and process.send would throw). */
const send = (message: FromLauncher, handle?: Socket) => {
  if (process.connected) process.send?.(message, handle, undefined, () => {});
};

function start(id: number, spec: SpawnSpec): void {
  const token = randomBytes(16).toString('hex');
  const handover = join(config.run, 'env', token);
  let cgroup: string | undefined;
  let child: ChildProcess;
  try {
    cgroup = reaper.prepare(token);
    const { entry, args = [], env } = spec;
    writeFileSync(handover, JSON.stringify({ entry, args, env, cgroup, ...config.user }), {
      mode: 0o600,
      flag: 'wx',
    });
    child = spawn(process.execPath, [...(spec.execArgv ?? []), config.bootstrap, handover], {
      env: { ...spec.execEnv, [PROCESS_MARKER]: token },
      cwd: spec.cwd ?? (config.user ? dirname(entry) : undefined),
      // Its own session and process group, so ending it can take the group (reaper.ts).
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', spec.channel ? 'pipe' : 'ignore', share ?? 'ignore'],
    });
  } catch (err) {
    rmSync(handover, { force: true });
    reaper.discard(cgroup);
    return void send({ type: 'failed', id, message: (err as Error).message });
  }
  if (child.pid === undefined) {
    // A failed spawn reports 'error' (ENOENT, EACCES, EAGAIN) and no 'exit'.
    child.once('error', (err) => {
      rmSync(handover, { force: true });
      reaper.discard(cgroup);
      send({ type: 'failed', id, message: err.message });
    });
    return;
  }
  // Moved into its cgroup from here, while Node starts in it: a move takes 10-20 ms (the kernel waits for an RCU
  // grace period), which the child would otherwise spend first thing. It checks, and moves itself if this has not.
  if (cgroup) void writeFile(join(cgroup, 'cgroup.procs'), String(child.pid)).catch(() => {});
  // A child's 'pipe' stdio are net.Sockets (over a socketpair), which process.send can hand over.
  const pipes = [
    [1, child.stdout],
    [2, child.stderr],
    [3, child.stdio[3]],
  ] as [1 | 2 | 3, Socket | null][];
  for (const [fd, socket] of pipes) {
    if (!socket) continue;
    // Node starts reading a child's pipes at once; what it read here would be lost to serve. Stopped in the same
    // tick as the spawn, before the event loop could read anything (Node's own handle: a platform seam).
    (socket as unknown as { _handle?: { readStop?(): number } })._handle?.readStop?.();
    send({ type: 'pipe', id, fd }, socket);
  }
  send({ type: 'spawned', id, pid: child.pid });
  const tracked = { pid: child.pid, token, cgroup };
  running.set(id, { child, tracked, handover });
  // 'exit', not 'close': the pipes are serve's now, this process never sees them close.
  child.once('exit', (code, signal) => void finish(id, code, signal));
}

/** The process exited: whatever it started is ended, then serve hears of it. */
async function finish(id: number, code: number | null, signal: string | null): Promise<void> {
  const r = running.get(id);
  if (!r) return;
  await reaper.end(r.tracked, true);
  rmSync(r.handover, { force: true });
  running.delete(id);
  send({ type: 'exit', id, code, signal });
}

/** serve is gone or done: nothing of any function stays. */
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.all(
    [...running.values()].map((r) => reaper.end(r.tracked, r.child.exitCode !== null || r.child.signalCode !== null)),
  );
  reaper.close();
  rmSync(config.run, { recursive: true, force: true });
  process.exit(0);
}

process.on('message', (message: ToLauncher) => {
  if (stopping) return;
  if (message.type === 'spawn') start(message.id, message.spec);
  else if (message.type === 'kill') {
    const r = running.get(message.id);
    if (r) void reaper.end(r.tracked, r.child.exitCode !== null || r.child.signalCode !== null);
  }
});
process.on('disconnect', () => void stop());
// Node emits no 'disconnect' when serve died in the middle of writing a message (it waits for the rest): a new
// parent (serve's death hands this process to init) says serve is gone all the same.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && void stop(), 250).unref();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});
send({ type: 'ready', cgroups: reaper.base !== undefined });
