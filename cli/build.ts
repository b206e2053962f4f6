import { join, relative } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { buildLocal, entryName, resolveEntry } from '../adapters/local/build.js';
import { type Command } from './command.js';
import { kib } from './deploy.js';
import { write } from './output.js';

/** What a target's build reports: the main artifact, and any more (a zip) with their sizes. */
export interface TargetBuild {
  file: string;
  size: number;
  ms: number;
  artifacts?: { file: string; size: number }[];
}

/** Each target's bundler, loaded only when chosen (the cloud SDKs stay out of other commands). */
const targets: Record<string, (file: string, options: { outdir: string; minify: boolean }) => Promise<TargetBuild>> = {
  local: (file, options) => buildLocal(file, options),
  cloudflare: async (file, options) => (await import('../adapters/cloudflare/build.js')).buildCloudflare(file, options),
  lambda: async (file, options) => (await import('../adapters/lambda/build.js')).buildLambda(file, options),
};

export const command: Command = {
  name: 'build',
  summary: "bundle a function for a target and print the artifact's path and size",
  usage: '<entry>',
  options: {
    target: { type: 'string', value: 'TARGET', description: `${Object.keys(targets).join(', ')} (default local)` },
    outdir: { type: 'string', short: 'o', value: 'DIR', description: 'where to write it (default dist/<function folder>)' },
    minify: { type: 'boolean', description: 'minify the bundle' },
  },
  examples: [
    'micro-fn build examples/helloworld',
    'micro-fn build examples/helloworld --target lambda      # index.mjs and function.zip',
    'micro-fn build examples/helloworld --target cloudflare --minify --outdir worker/',
  ],
  async run({ positionals, values }) {
    const [entry] = positionals;
    if (!entry) throw new UserError('build needs an entry: micro-fn build <entry>');
    const target = (values.target as string | undefined) ?? 'local';
    const build = targets[target];
    if (!build) throw new UserError(`--target ${target} is not available; targets: ${Object.keys(targets).join(', ')}`);
    const file = resolveEntry(entry);
    const outdir = (values.outdir as string | undefined) ?? join('dist', entryName(file));
    const built = await build(file, { outdir, minify: values.minify === true });
    const artifacts = [{ file: built.file, size: built.size }, ...(built.artifacts ?? [])];
    if (values.json) await write(process.stdout, `${JSON.stringify({ target, file: built.file, size: built.size, ms: built.ms, artifacts })}\n`);
    else {
      const lines = artifacts.map((a, i) => `${relative(process.cwd(), a.file) || a.file}  ${kib(a.size)}${i === 0 ? `  (${target}, ${built.ms} ms)` : ''}\n`);
      await write(process.stdout, lines.join(''));
    }
    return 0;
  },
};
