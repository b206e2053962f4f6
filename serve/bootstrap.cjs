// The first code of every process `micro-fn serve` starts for a function (a local bundle, a Lambda runtime), run by
// its launcher (serve/launcher-process.ts) as `node [flags] bootstrap.cjs <hand-over file>`. Before anything of the
// function is loaded it: reads the hand-over file (the entry, its arguments, the environment the function declared,
// written 0600 by the launcher) and deletes it, so the declared variables never appear in /proc/<pid>/environ;
// moves itself into its cgroup; gives the environment to process.env; drops to the function's user (`setuid` from
// root also makes the process non-dumpable: another process of that user cannot read its /proc files or memory);
// then imports the entry as `node <entry> <args...>` would run it. Plain JavaScript: it runs under plain `node`.
// CommonJS: Node loads it about a millisecond sooner than an ES module, on every cold start.
const { readFileSync, rmSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const file = process.argv[2] ?? '';
/** @type {{ entry: string, args: string[], env: Record<string, string>, cgroup?: string, uid?: number, gid?: number }} */
const handover = JSON.parse(readFileSync(file, 'utf8'));
rmSync(file, { force: true });
// Fails closed: a process that cannot be put where its descendants are tracked does not run the function. The
// launcher moves it as it starts; it moves itself if that has not happened yet (or failed).
if (handover.cgroup && !inCgroup(handover.cgroup)) writeFileSync(join(handover.cgroup, 'cgroup.procs'), '0');
for (const [key, value] of Object.entries(handover.env)) process.env[key] = value;
if (handover.gid !== undefined) {
  process.setgroups([handover.gid]);
  process.setgid(handover.gid);
}
if (handover.uid !== undefined) process.setuid(handover.uid);
process.argv = [process.argv[0] ?? process.execPath, handover.entry, ...handover.args];
// Output is never lost when the function exits: its stdout and stderr, socket pairs to serve, block.
require('../adapters/local/blocking-stdio.cjs').blockingStdio();
// Nothing outlives its launcher: the launcher ends every function process when serve goes, but when both are killed at
// once (a SIGKILL to serve's process group) no one is left to, and this process is handed to init. It then ends
// itself and its process group (it leads one: the launcher starts it detached). A check a second, never keeping the
// process alive by itself.
const launcher = process.ppid;
setInterval(() => process.ppid !== launcher && process.kill(-process.pid, 'SIGKILL'), 1000).unref();
// A local bundle's script with its V8 code cache, when its build wrote them (adapters/local/code-cache.cjs): what
// the module would compile on every start is compiled once. Otherwise the entry is imported.
if (!require('../adapters/local/code-cache.cjs').loadBeside(handover.entry))
  import(pathToFileURL(handover.entry).href).catch((err) => {
    // An entry that throws as it loads fails as it would as Node's main module: an uncaught exception (printed, exit 1,
    // or whatever the entry's own 'uncaughtException' handler does: the Lambda runtime reports an init error), not an
    // unhandled rejection.
    process.nextTick(() => {
      throw err;
    });
  });

/**
 * Whether this process is in the cgroup at `path` (its unified hierarchy's line of /proc/self/cgroup names it).
 * @param {string} path
 */
function inCgroup(path) {
  try {
    const line = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    const relative = line?.slice(3);
    return !!relative && relative !== '/' && path.endsWith(relative);
  } catch {
    return false;
  }
}
