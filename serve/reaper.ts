/**
 * Ends every process a function process started, attached or detached, when the function ends: the launcher's
 * (serve/launcher-process.ts) part of confinement. Two ways, the first this system allows:
 *
 * - **cgroup v2.** Each function process moves itself (serve/bootstrap.cjs, before the function loads) into a cgroup
 *   of its own under the launcher's; whatever it starts is born there, and the function's user cannot move anything
 *   out (the cgroups are the launcher's). Ending it is `cgroup.kill` (or a SIGKILL to each member on kernels before
 *   5.14) until it is empty. Used when the launcher may make cgroups: as root, or in a delegated subtree.
 * - **Otherwise**, a sweep of /proc: the function's process group and session (it is started as the leader of both),
 *   its descendants by parent, and any process whose environment holds the function's marker (`MICRO_FN_PROCESS`,
 *   inherited by everything it starts unless that clears its environment). A process that leaves the session AND
 *   clears its environment AND whose parent has exited escapes this sweep; it cannot escape a cgroup.
 *
 * Linux only; elsewhere only the process group is ended. Node has no prctl, so PR_SET_CHILD_SUBREAPER is not an option.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile, readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Set in every function process's environment; descendants inherit it. Its value names the process. */
export const PROCESS_MARKER = 'MICRO_FN_PROCESS';

/** How one function process is tracked. */
export interface Tracked {
  pid: number;
  /** Its marker value. */
  token: string;
  /** Its cgroup folder, when cgroups are used. */
  cgroup?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Reaper {
  /** The launcher's own cgroup folder for function processes; undefined: the /proc sweep. */
  readonly base: string | undefined;
  /** Only processes of this user are swept by marker (the function user, or the launcher's own). */
  readonly #uid: number;

  /**
   * @param options.cgroups false: never use cgroups (the sweep only), to test that way on a system that has them.
   * @param options.uid the user function processes run as.
   */
  constructor(options: { cgroups?: boolean; uid?: number } = {}) {
    this.#uid = options.uid ?? process.getuid?.() ?? -1;
    this.base = options.cgroups === false ? undefined : makeBase();
  }

  /** The cgroup a function process with marker `token` is to join (made now), or undefined. */
  prepare(token: string): string | undefined {
    if (!this.base) return undefined;
    const dir = join(this.base, `p-${token}`);
    mkdirSync(dir);
    return dir;
  }

  /**
   * Ends `tracked` and everything it started, and resolves once they are gone (a bounded wait: a process in
   * uninterruptible sleep may take longer to vanish, but it has been sent SIGKILL). `exited`: the process itself
   * has exited and been reaped, so its pid may already name another process: only its group, session, cgroup and
   * marker count then (a group or session id is not reused while a process is in it).
   */
  async end(tracked: Tracked, exited = false): Promise<void> {
    if (!(tracked.pid > 0)) throw new Error(`no process ${tracked.pid} to end`); // kill(0) would be our own group
    if (!tracked.cgroup) return this.#sweep(tracked, exited);
    signal(-tracked.pid); // the process group; the process leads it
    if (!exited) signal(tracked.pid);
    await this.#endCgroup(tracked.cgroup);
  }

  async #endCgroup(dir: string): Promise<void> {
    const kill = existsSync(join(dir, 'cgroup.kill'));
    for (let round = 0; round < 200; round++) {
      const members = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map(Number);
      if (members.length === 0) break;
      if (kill) await writeFile(join(dir, 'cgroup.kill'), '1').catch(() => {});
      else for (const pid of members) signal(pid);
      await sleep(round < 20 ? 5 : 25);
    }
    await rmdir(dir).catch(() => {});
  }

  /** Sweeps /proc until a pass finds nothing more of `tracked`'s. */
  async #sweep(tracked: Tracked, exited: boolean): Promise<void> {
    const marker = `\0${PROCESS_MARKER}=${tracked.token}\0`;
    // The table is read before the process is killed: its children are still its children then.
    const ours = new Set<number>(exited ? [] : [tracked.pid]);
    const others = new Set<number>();
    for (let pass = 0; pass < 10; pass++) {
      const before = ours.size;
      const table = await processTable();
      for (const p of table) if (p.pgrp === tracked.pid || p.session === tracked.pid) ours.add(p.pid);
      // Descendants by parent: only while the chain is there (an orphan's parent is init).
      for (let grew = true; grew;) {
        grew = false;
        for (const p of table) {
          if (ours.has(p.pid) || !((!exited && p.ppid === tracked.pid) || ours.has(p.ppid))) continue;
          ours.add(p.pid);
          grew = true;
        }
      }
      for (const p of table) {
        if (ours.has(p.pid) || others.has(p.pid) || p.uid !== this.#uid) continue;
        if ((await environ(p.pid)).includes(marker)) ours.add(p.pid);
        else others.add(p.pid);
      }
      // Only the ones found in this pass: those of earlier passes have been sent SIGKILL, and their pids may be reused.
      if (pass === 0) signal(-tracked.pid); // the process group; the process leads it
      [...ours].slice(pass === 0 ? 0 : before).forEach(signal);
      if (ours.size === before) break;
      await sleep(5);
    }
  }

  /** Removes the cgroup made for a process that never started. */
  discard(cgroup: string | undefined): void {
    if (cgroup) safe(() => rmdirSync(cgroup), undefined);
  }

  /** Removes the launcher's cgroup folder (every function process's folder is gone by then). */
  close(): void {
    if (!this.base) return;
    for (const name of safe(() => readdirSync(this.base!), [] as string[]))
      if (name.startsWith('p-')) safe(() => rmdirSync(join(this.base!, name)), undefined);
    safe(() => rmdirSync(this.base!), undefined);
  }
}

function signal(pid: number): void {
  if (pid === 0 || pid === -1) return; // our own group, every process
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already, or not ours
  }
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

/**
 * A cgroup of the launcher's own for function processes (`micro-fn-<pid>` beside the launcher's cgroup), if this
 * system has cgroup v2 and lets the launcher make one; folders that dead launchers left are removed first.
 */
function makeBase(): string | undefined {
  if (process.platform !== 'linux') return undefined;
  const own = ownCgroup();
  if (!own) return undefined;
  for (const name of safe(() => readdirSync(own), [] as string[])) {
    const pid = /^micro-fn-(\d+)$/.exec(name)?.[1];
    if (pid && !existsSync(`/proc/${pid}`)) {
      const stale = join(own, name);
      for (const child of safe(() => readdirSync(stale), [] as string[]))
        if (child.startsWith('p-')) safe(() => rmdirSync(join(stale, child)), undefined);
      safe(() => rmdirSync(stale), undefined);
    }
  }
  const base = join(own, `micro-fn-${process.pid}`);
  try {
    mkdirSync(base);
    // Moving a process in needs write access to cgroup.procs here and where it comes from.
    writeFileSync(join(base, 'cgroup.procs'), '', { flag: 'r+' });
    return base;
  } catch {
    safe(() => rmdirSync(base), undefined);
    return undefined;
  }
}

/** The folder of this process's cgroup in the cgroup v2 hierarchy, if it is mounted. */
function ownCgroup(): string | undefined {
  const line = safe(() => readFileSync('/proc/self/cgroup', 'utf8'), '')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  if (line === undefined) return undefined;
  const path = line.slice(3);
  for (const mount of safe(() => readFileSync('/proc/self/mountinfo', 'utf8'), '').split('\n')) {
    const [before, after] = mount.split(' - ');
    if (!after?.startsWith('cgroup2 ')) continue;
    const fields = before!.split(' ');
    const root = fields[3] ?? '/';
    const point = fields[4];
    if (!point || !(root === '/' || path === root || path.startsWith(`${root}/`))) continue;
    return join(point, root === '/' ? path : path.slice(root.length));
  }
  return undefined;
}

interface ProcessEntry {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  uid: number;
}

/** Every process: its parent, group, session and user, from /proc/<pid>/stat. */
async function processTable(): Promise<ProcessEntry[]> {
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
  const entries = await Promise.all(
    pids.map(async (pid) => {
      try {
        const [text, info] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), stat(`/proc/${pid}`)]);
        // `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses.
        const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
        return {
          pid: Number(pid),
          ppid: Number(fields[1]),
          pgrp: Number(fields[2]),
          session: Number(fields[3]),
          uid: info.uid,
        };
      } catch {
        return undefined;
      }
    }),
  );
  return entries.filter((e): e is ProcessEntry => e !== undefined);
}

/** The environment block of `pid` as text, NUL before and after each `K=V`; empty when it cannot be read. */
async function environ(pid: number): Promise<string> {
  return `\0${await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')}`;
}
