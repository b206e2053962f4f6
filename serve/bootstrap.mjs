// The first code of every process `micro-fn serve` starts for a function (a local bundle, a Lambda runtime), run by
// its launcher (serve/launcher-process.ts) as `node [flags] bootstrap.mjs <hand-over file>`. Before anything of the
// function is loaded it: reads the hand-over file (the entry, its arguments, the environment the function declared,
// written 0600 by the launcher) and deletes it, so the declared variables never appear in /proc/<pid>/environ;
// moves itself into its cgroup; gives the environment to process.env; drops to the function's user (`setuid` from
// root also makes the process non-dumpable: another process of that user cannot read its /proc files or memory);
// then imports the entry as `node <entry> <args...>` would run it. Plain JavaScript: it runs under plain `node`.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const file = process.argv[2] ?? '';
/** @type {{ entry: string, args: string[], env: Record<string, string>, cgroup?: string, uid?: number, gid?: number }} */
const handover = JSON.parse(readFileSync(file, 'utf8'));
rmSync(file, { force: true });
// Fails closed: a process that cannot be put where its descendants are tracked does not run the function.
if (handover.cgroup) writeFileSync(join(handover.cgroup, 'cgroup.procs'), '0');
for (const [key, value] of Object.entries(handover.env)) process.env[key] = value;
if (handover.gid !== undefined) {
  process.setgroups([handover.gid]);
  process.setgid(handover.gid);
}
if (handover.uid !== undefined) process.setuid(handover.uid);
process.argv = [process.argv[0] ?? process.execPath, handover.entry, ...handover.args];
await import(pathToFileURL(handover.entry).href);
