// The test runner: uvu's own CLI (`uvu <dir> <pattern>`), plus the one check uvu 0.5 lacks. When a suite's
// `before` hook throws, uvu's runner returns from its `finally` block, which swallows the error: the suite prints
// "(0 / N)", nothing is reported and the process exits 0. Here a suite whose tests did not all run without a
// failure being reported fails the run, saying so.
// Usage: node --import tsx test/run.mjs test '\.test\.ts$'
import { parse } from 'uvu/parse';

const [dir = 'test', pattern] = process.argv.slice(2);
const { suites } = await parse(dir, pattern, { cwd: process.cwd() });
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
