#!/usr/bin/env node
// The micro-fn command (package.json bin). The CLI is compiled to dist/ by `npm install` (prepare) or `npm run build`.
// CommonJS, as is the one file `micro-fn invoke` runs (dist/cli/invoke.cjs, with its V8 code cache): a one-shot call
// then starts without Node's ES module loader, which alone costs a few milliseconds of every start (issue 18). Every
// other command is the ES module CLI, dist/cli/main.js.
'use strict';

const [name, ...rest] = process.argv.slice(2);
// What a function run in this process prints is not lost when it exits while a slow reader lags. Only for the
// commands that run one: serve echoing every function's lines must never stall on a paused reader of its stdout.
if (name === 'invoke' || name === 'run') require('../adapters/local/blocking-stdio.cjs').blockingStdio();
if (name === 'invoke') {
  // Run with its V8 code cache (adapters/local/code-cache.cjs; build.mjs wrote both). Its import()s come here:
  // a specifier it names relative to itself is resolved from its own folder.
  const { join } = require('node:path');
  const script = join(__dirname, '..', 'dist', 'cli', 'invoke.cjs');
  /** @param {string} specifier */
  const importer = (specifier) =>
    import(
      specifier.startsWith('.') ? require('node:url').pathToFileURL(join(script, '..', specifier)).href : specifier
    );
  let invoke;
  try {
    invoke = require('../adapters/local/code-cache.cjs').runScript(script, importer);
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).path !== script) throw err;
  }
  // Absent, or without the hash line build.mjs ends it with (a build that did not finish).
  if (invoke) invoke.exports.main(rest);
  else notBuilt();
} else {
  import('../dist/cli/main.js').then(
    (cli) => cli.main(process.argv.slice(2)),
    (err) => {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
      notBuilt();
    },
  );
}

function notBuilt() {
  console.error('micro-fn: the CLI is not built yet; run `npm run build` in the micro-fn package');
  process.exitCode = 1;
}
