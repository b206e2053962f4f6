import { basename, dirname, join, relative } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { buildLocal, resolveEntry } from '../adapters/local/build.js';
import { type Command } from './command.js';
import { kib } from './deploy.js';
import { write } from './output.js';

export const command: Command = {
  name: 'build',
  summary: "bundle a function for a target and print the artifact's path and size",
  usage: '<entry>',
  options: {
    target: { type: 'string', value: 'TARGET', description: 'local (default)' },
    outdir: { type: 'string', short: 'o', value: 'DIR', description: 'where to write it (default dist/<function folder>)' },
    minify: { type: 'boolean', description: 'minify the bundle' },
  },
  examples: ['micro-fn build examples/helloworld', 'micro-fn build examples/helloworld --outdir out/hello'],
  async run({ positionals, values }) {
    const [entry] = positionals;
    if (!entry) throw new UserError('build needs an entry: micro-fn build <entry>');
    const target = (values.target as string | undefined) ?? 'local';
    if (target !== 'local') throw new UserError(`--target ${target} is not available; targets: local`);
    const file = resolveEntry(entry);
    const name = basename(file).startsWith('index.') ? basename(dirname(file)) : basename(file).replace(/\.[cm]?[jt]s$/, '');
    const outdir = (values.outdir as string | undefined) ?? join('dist', name);
    const built = await buildLocal(file, { outdir, minify: values.minify === true });
    if (values.json) await write(process.stdout, `${JSON.stringify({ target, file: built.file, size: built.size, ms: built.ms })}\n`);
    else await write(process.stdout, `${relative(process.cwd(), built.file) || built.file}  ${kib(built.size)}  (${target}, ${built.ms} ms)\n`);
    return 0;
  },
};
