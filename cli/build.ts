/** `micro-fn build`: bundles a function with the build of the target `--target` names (adapters/targets.ts). */
import { join, relative } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { entryName, resolveEntry } from '../adapters/kit/entry.js';
import { envPairs, kib } from '../adapters/kit/options.js';
import { loadTarget, targets } from '../adapters/targets.js';
import { defineCommand } from './command.js';
import { write } from './output.js';

export const command = defineCommand({
  name: 'build',
  summary: "bundle a function for a target and print the artifact's path and size",
  usage: '<entry>',
  description: [
    "Bundles <entry> for --target and prints the artifact's path and size. A bundle for a platform other than this",
    "machine carries the plugins the function's configuration selects: the MICRO_* variables here, and --env",
    '(which wins).',
  ].join('\n'),
  options: {
    target: { type: 'string', value: 'TARGET', description: `${Object.keys(targets).join(', ')} (default local)` },
    outdir: {
      type: 'string',
      short: 'o',
      value: 'DIR',
      description: 'where to write it (default dist/<function folder>)',
    },
    minify: { type: 'boolean', description: 'minify the bundle (lambda, cloudflare and deno: the default)' },
    'no-minify': { type: 'boolean', description: 'leave a lambda, cloudflare or deno bundle unminified' },
    env: {
      type: 'string',
      short: 'e',
      value: 'KEY=VALUE',
      multiple: true,
      description: "the function's configuration (MICRO_REGISTRY=nats, ...)",
    },
  },
  examples: [
    'micro-fn build examples/helloworld',
    'micro-fn build examples/helloworld --target lambda      # index.mjs and function.zip',
    'micro-fn build examples/helloworld --target cloudflare --outdir worker/',
  ],
  async run({ positionals, values }) {
    const [entry] = positionals;
    if (!entry) throw new UserError('build needs an entry: micro-fn build <entry>');
    const name = values.target ?? 'local';
    const target = await loadTarget(name);
    const file = resolveEntry(entry);
    const outdir = values.outdir ?? join('dist', entryName(file));
    const env = { ...microVariables(process.env), ...envPairs(values.env) };
    const minify = values.minify === true ? true : values['no-minify'] === true ? false : undefined;
    const built = await target.build({ entry: file, outdir, minify, env });
    const artifacts = [{ file: built.file, size: built.size }, ...(built.artifacts ?? [])];
    if (values.json)
      await write(
        process.stdout,
        `${JSON.stringify({ target: name, file: built.file, size: built.size, ms: built.ms, artifacts })}\n`,
      );
    else {
      const lines = artifacts.map(
        (a, i) =>
          `${relative(process.cwd(), a.file) || a.file}  ${kib(a.size)}${i === 0 ? `  (${name}, ${built.ms} ms)` : ''}\n`,
      );
      await write(process.stdout, lines.join(''));
    }
    return 0;
  },
});

/** The MICRO_* variables of `env`: the configuration a function built here would get. */
function microVariables(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(
      (e): e is [string, string] => e[0].startsWith('MICRO_') && e[1] !== undefined && e[0] !== 'MICRO_FN_HOME',
    ),
  );
}
