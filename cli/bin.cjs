#!/usr/bin/env node
// The micro-fn command (package.json bin). The CLI is compiled to dist/ by `npm install` (prepare) or `npm run build`.
// CommonJS, as is the one file `micro-fn invoke` runs (dist/cli/invoke.cjs): a one-shot call then starts without
// Node's ES module loader, which alone costs a few milliseconds of every start (issue 18). Every other command is
// the ES module CLI, dist/cli/main.js.
'use strict';

const [name, ...rest] = process.argv.slice(2);
if (name === 'invoke') {
  let invoke;
  try {
    invoke = require('../dist/cli/invoke.cjs');
  } catch (err) {
    notBuilt(err, 'MODULE_NOT_FOUND');
  }
  invoke?.main(rest);
} else {
  import('../dist/cli/main.js').then(
    (cli) => cli.main(process.argv.slice(2)),
    (err) => notBuilt(err, 'ERR_MODULE_NOT_FOUND'),
  );
}

/**
 * @param {unknown} err
 * @param {string} code
 */
function notBuilt(err, code) {
  if (/** @type {{ code?: string } | undefined} */ (err)?.code !== code) throw err;
  console.error('micro-fn: the CLI is not built yet; run `npm run build` in the micro-fn package');
  process.exitCode = 1;
}
