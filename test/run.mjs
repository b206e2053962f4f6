// The test runner. Usage: node --import tsx test/run.mjs test '\.test\.ts$'
//
// Each test file runs in a process of its own, several at a time: as many as fit in MICRO_FN_TEST_JOBS CPUs (default
// the machine's), each counted for the share of a CPU it used last time (see runInParallel), longest first by the
// last run's times. At the end it prints the run's wall and CPU time and the 5 slowest files. A file's output
// is printed whole when it ends, so files never interleave. A file fails the run when a test fails, when it runs
// longer than MICRO_FN_TEST_TIMEOUT seconds (default 900), and when it finished its tests but did not exit within
// 15 s (something it started is still open: uvu never forces an exit). Such a file is ended with everything it
// started (its process group).
//
// In a file's process the runner is uvu's own (`uvu <dir> <pattern>`), plus the one check uvu 0.5 lacks: when a
// suite's `before` hook throws, uvu's runner returns from its `finally` block, which swallows the error: the
// suite prints "(0 / N)", nothing is reported and the process exits 0. Here a suite whose tests did not all run
// without a failure being reported fails the run, saying so.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { parse } from 'uvu/parse';

// Tests that use the AWS SDK themselves (signers, clients) print its Node-version notice otherwise, as the CLI would.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const [dir = 'test', pattern] = process.argv.slice(2);
const { suites } = await parse(dir, pattern, { cwd: process.cwd() });
const jobs = Math.max(1, Number(process.env.MICRO_FN_TEST_JOBS) || availableParallelism());
let lastReaped = readReaped(); // see reapedCpu

if (process.env.MICRO_FN_TEST_CHILD || suites.length <= 1) await runHere(suites);
else await runInParallel(suites, jobs);

/** Runs `suites` in this process, as uvu's CLI does, failing the run for a suite whose `before` hook threw. */
async function runHere(suites) {
  globalThis.UVU_DEFER = 1;
  const uvu = await import('uvu');
  for (const [index, file] of suites.entries()) {
    globalThis.UVU_INDEX = index;
    globalThis.UVU_QUEUE.push([file.name]);
    await import(`file:///${file.file}`);
  }

  let unrun = 0;
  for (const group of globalThis.UVU_QUEUE) {
    for (let i = 1; i < group.length; i++) {
      const run = group[i];
      group[i] = async () => {
        const [errors, ran, skipped, total] = await run();
        if (errors !== true || ran >= total) return [errors, ran, skipped, total];
        unrun += total - ran;
        return [
          `  ${total - ran} of ${total} tests never ran: a before hook failed (uvu does not report its error)`,
          ran,
          skipped,
          total,
        ];
      };
    }
  }
  await uvu.exec(false);
  if (unrun > 0) {
    console.error(`${unrun} tests never ran because a before hook failed`);
    process.exitCode = 1;
  }
}

/**
 * Runs each of `suites` in a process of its own and sums up. `jobs` is a budget of CPUs: a file counts for the
 * share of a CPU it used in the last run (its CPU time over its wall time; a file never run counts as 1), and
 * files start while the shares of those running fit in the budget, up to 2 × `jobs` files at once, so files that
 * mostly wait (for a timeout, a process to start) run beside the busy ones. More files than `jobs` run only while
 * the machine's load average is below its CPU count: on a machine busy with other work they would only contend. Longest first by the last run's
 * wall time; when the next does not fit, a shorter one that does goes first. With `jobs` 1, one file at a time.
 */
async function runInParallel(suites, jobs) {
  const timesFile = join('node_modules', '.cache', 'micro-fn', 'test-times.json');
  const last = readTimes(timesFile);
  // Longest first: by the last run's time, else by size (a longer file tends to run longer).
  const weight = (s) => last.wall[s.name] ?? statSync(s.file).size / 100;
  const share = (s) =>
    jobs === 1 || !last.wall[s.name] || last.cpu[s.name] === undefined
      ? 1
      : Math.min(1.5, Math.max(0.2, last.cpu[s.name] / last.wall[s.name]));
  const maxFiles = jobs === 1 ? 1 : jobs * 2;
  const queue = [...suites].sort((a, b) => weight(b) - weight(a));
  const timeout = (Number(process.env.MICRO_FN_TEST_TIMEOUT) || 900) * 1000;
  const running = new Set();
  const totals = { total: 0, passed: 0, skipped: 0 };
  const failed = [];
  // Entries of files that no longer exist go; those of files this run skips (a narrower pattern) stay.
  const exists = ([name]) => existsSync(join(dir, name));
  const times = Object.fromEntries(Object.entries(last.wall).filter(exists));
  const lastCpu = Object.fromEntries(Object.entries(last.cpu).filter(exists));
  const cpu = {};
  let load = 0; // the shares of the files running
  let maxAtOnce = 0;
  const start = performance.now();
  const stop = () => {
    for (const child of running) killGroup(child);
    process.exit(130);
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);

  const runOne = async (suite) => {
    const began = performance.now();
    const result = await runFile(suite, timeout, running);
    times[suite.name] = Math.round(performance.now() - began);
    cpu[suite.name] = result.cpu;
    const counts = countsOf(result.output);
    totals.total += counts.total;
    totals.passed += counts.passed;
    totals.skipped += counts.skipped;
    const problem = result.problem ?? (result.code === 0 ? undefined : `exit ${result.code ?? result.signal}`);
    if (problem) failed.push(`${suite.name}: ${problem}`);
    process.stdout.write(
      `\n${suite.name} (${seconds(times[suite.name])}${cpuOf(result.cpu)})\n${withoutSummary(result.output)}\n` +
        (problem ? `  FAILED: ${problem}\n` : ''),
    );
  };
  await new Promise((resolve) => {
    let active = 0;
    const fill = () => {
      while (queue.length > 0 && active < maxFiles) {
        // Past one file per CPU only while the machine has CPU to spare (its load counts these files, and others' work).
        if (active >= jobs && loadavg()[0] >= availableParallelism()) break;
        const index = active === 0 ? 0 : queue.findIndex((s) => load + share(s) <= jobs + 1e-9);
        if (index < 0) break;
        const [suite] = queue.splice(index, 1);
        const counted = share(suite);
        load += counted;
        active++;
        maxAtOnce = Math.max(maxAtOnce, active);
        void runOne(suite).finally(() => {
          load -= counted;
          active--;
          if (active === 0 && queue.length === 0) resolve();
          else fill();
        });
      }
    };
    if (queue.length === 0) resolve();
    fill();
  });

  try {
    mkdirSync(dirname(timesFile), { recursive: true });
    writeFileSync(timesFile, JSON.stringify({ wall: times, cpu: { ...lastCpu, ...definedOnly(cpu) } }));
  } catch {
    // only a hint for the next run's order
  }
  const slowest = suites
    .map((s) => s.name)
    .sort((a, b) => times[b] - times[a])
    .slice(0, 5)
    .map((name) => `${name} ${seconds(times[name])}${cpuOf(cpu[name])}`);
  const cpuTotal = Object.values(cpu).reduce((sum, ms) => sum + (ms ?? 0), 0);
  console.log(
    `\n  Files:     ${suites.length} (up to ${maxAtOnce} at a time, for ${jobs} CPUs)\n  Total:     ${totals.total}\n  Passed:    ${totals.passed}\n  Skipped:   ${totals.skipped}\n  Slowest:   ${slowest.join('\n             ')}\n  Duration:  ${seconds(performance.now() - start)}${cpuOf(cpuTotal || undefined)}`,
  );
  if (failed.length > 0) {
    console.error(`\n${failed.length} of ${suites.length} test files failed:\n  ${failed.join('\n  ')}`);
    process.exitCode = 1;
  }
}

/** Runs one file in a process of its own (a process group, so what it starts ends with it on a timeout). */
function runFile(suite, timeout, running) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, process.argv[1], dir, `^${suite.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`],
      {
        env: { ...process.env, MICRO_FN_TEST_CHILD: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    running.add(child);
    let output = '';
    let problem;
    let exitTimer;
    const onData = (chunk) => {
      output += chunk;
      // uvu's summary ends with the duration: from then on the process has 15 s to exit.
      if (!exitTimer && /Skipped:\s+\d+\s+Duration:/.test(output))
        exitTimer = setTimeout(() => {
          problem = 'its tests ended but it did not exit within 15 s: something it started is still open';
          killGroup(child);
        }, 15_000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      problem = `still running after ${timeout / 1000} s (MICRO_FN_TEST_TIMEOUT): ended`;
      killGroup(child);
    }, timeout);
    child.on('close', (code, signal) => {
      const cpu = reapedCpu();
      clearTimeout(timer);
      clearTimeout(exitTimer);
      running.delete(child);
      // What the file started in its group, if anything is left, ends with it.
      killGroup(child);
      resolve({ output, code, signal, problem, cpu });
    });
  });
}

/**
 * The CPU time (user + system, ms) of the processes this one reaped since the last call, from /proc/self/stat's
 * cutime and cstime: a file's process once it exits, with every process under it that was waited for (a test's
 * serve, serve's function processes). Called when a file's process ends, it is that file's CPU time; undefined
 * where there is no /proc.
 */
function reapedCpu() {
  const now = readReaped();
  if (now === undefined || lastReaped === undefined) return undefined;
  const spent = now - lastReaped;
  lastReaped = now;
  return spent;
}

function readReaped() {
  try {
    // Fields after the command (which may hold spaces) in parentheses; cutime and cstime are the 16th and 17th.
    const fields = readFileSync('/proc/self/stat', 'utf8').split(') ').at(-1).split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10; // clock ticks of 10 ms (USER_HZ is 100 on Linux)
  } catch {
    return undefined;
  }
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

function cpuOf(ms) {
  return ms === undefined ? '' : `, CPU ${seconds(ms)}`;
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** A file's output without uvu's summary (the run's own sums it up). */
function withoutSummary(output) {
  return output
    .replace(/^\s*\S+\.test\.[cm]?[jt]s\n/, '') // uvu's own heading: the file's name, printed above already
    .replace(/\n\s*Total:\s+\d+\s+Passed:\s+\d+\s+Skipped:\s+\d+\s+Duration:\s+\S+\s*$/, '')
    .trimEnd();
}

/** uvu's summary of one file. */
function countsOf(output) {
  const count = (label) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(output)?.[1] ?? 0);
  return { total: count('Total'), passed: count('Passed'), skipped: count('Skipped') };
}

/** The last run's wall and CPU times (ms) by file; an older file held the wall times alone. */
function readTimes(file) {
  try {
    const json = JSON.parse(readFileSync(file, 'utf8'));
    return json.wall ? { wall: json.wall, cpu: json.cpu ?? {} } : { wall: json, cpu: {} };
  } catch {
    return { wall: {}, cpu: {} };
  }
}

function definedOnly(record) {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}
