/** deno.json and .env for a Deno folder: the task's permissions, and variables Deno reads back as written. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { denoJson, dotenv, serveCommand, type DenoConfigOptions } from '../../../adapters/deno/config.js';
import { UserError } from '../../../runtime/core/errors.js';
import { runDeno, tempDir } from './deno.js';

const base: DenoConfigOptions = { name: 'helloworld', main: 'index.mjs', vars: {} };

// ---
const command = suite('serveCommand');

command('allows MICRO_* only, and no network beyond the port deno serve listens on, by default', () => {
  assert.is(serveCommand(base), "deno serve --no-prompt '--allow-env=MICRO_*' index.mjs");
});

command('allows the names of its own variables, reads them from .env, and listens where told', () => {
  const vars = { SLACK_URL: 'https://hooks.example.com', MICRO_LOG_LEVEL: 'warn', API_KEY: 'k' };
  const command = serveCommand({ ...base, vars, host: '127.0.0.1', port: 9000 });
  const env = "'--allow-env=MICRO_*,API_KEY,SLACK_URL' --env-file=.env";
  assert.is(command, `deno serve --no-prompt ${env} --host 127.0.0.1 --port 9000 index.mjs`);
});

command('allows every host with a registry or broker (nodes known at run time only), else the hosts given', () => {
  assert.match(serveCommand({ ...base, vars: { MICRO_REGISTRY: 'nats' } }), / --allow-net --env-file=.env /);
  const broker = serveCommand({ ...base, vars: { MICRO_BROKER: 'nats' }, allowNet: ['api.example.com'] });
  assert.match(broker, / --allow-net /);
  const hosts = serveCommand({ ...base, allowNet: ['api.example.com', 'db:5432'] });
  assert.match(hosts, / --allow-net=api.example.com,db:5432 /);
  assert.throws(
    () => serveCommand({ ...base, allowNet: ['a b'] }),
    (err: unknown) => err instanceof UserError,
  );
});

command('a function that exports spans may read every OTEL_* variable and reach its collector', () => {
  const vars = { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example.com:4318', OTEL_SERVICE_NAME: 'edge' };
  const command = serveCommand({ ...base, vars, allowNet: ['api.example.com'] });
  assert.match(command, / '--allow-env=MICRO_\*,OTEL_\*' --allow-net=api.example.com,otel.example.com:4318 /);
});

command.run();

// ---
const json = suite('denoJson');

json('is a deno.json whose start task serves the module, described', () => {
  assert.equal(JSON.parse(denoJson(base)), {
    tasks: {
      start: {
        description: 'Serve helloworld (written by micro-fn deploy --target deno)',
        command: "deno serve --no-prompt '--allow-env=MICRO_*' index.mjs",
      },
    },
  });
});

json.run();

// ---
const env = suite<{ dir: string; remove: () => void }>('dotenv', { dir: '', remove: () => {} });
env.before.each((ctx) => {
  Object.assign(ctx, tempDir());
});
env.after.each((ctx) => ctx.remove());

env("writes values Deno's --env-file reads back exactly as given", async (ctx) => {
  const vars = {
    PLAIN: 'hi',
    DOLLARS: 'costs $5, ${HOME} and $HOME',
    HASH: 'a # not a comment',
    BACKSLASH: 'C:\\path\\n',
    DOUBLE: 'say "hi"',
    SINGLE: "it's ${HOME} $5",
    LINES: 'one\ntwo $x',
    EMPTY: '',
  };
  writeFileSync(join(ctx.dir, '.env'), dotenv(vars));
  const script = join(ctx.dir, 'read.js');
  const keys = JSON.stringify(Object.keys(vars));
  writeFileSync(script, `console.log(JSON.stringify(Object.fromEntries(${keys}.map((k) => [k, Deno.env.get(k)]))));`);
  const run = await runDeno(['run', '--no-prompt', '--allow-env', '--env-file=.env', 'read.js'], { cwd: ctx.dir });
  assert.is(run.code, 0, run.output);
  assert.equal(JSON.parse(run.output), vars);
});

env('refuses what .env cannot hold, saying to set it where Deno runs', () => {
  const refusals = [
    ['BAD-NAME', 'x'],
    ['1ST', 'x'],
    ['MIXED', `it's "both"`],
    ['MIXED2', 'a\nb\\c'],
  ] as const;
  for (const [key, value] of refusals) {
    const refused = (err: unknown) => err instanceof UserError && err.message.startsWith(`--env ${key}:`);
    assert.throws(() => dotenv({ [key]: value }), refused, key);
  }
});

env.run();
