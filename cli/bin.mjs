#!/usr/bin/env node
// The micro-fn command. The CLI is compiled to dist/ by `npm install` (prepare) or `npm run build`.
import('../dist/cli/main.js').then(
  (cli) => cli.main(process.argv.slice(2)),
  (err) => {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    console.error('micro-fn: the CLI is not built yet; run `npm run build` in the micro-fn package');
    process.exitCode = 1;
  },
);
