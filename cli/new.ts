import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { packageRoot } from '../adapters/kit/package-root.js';
import { UserError } from '../runtime/core/errors.js';
import { defineCommand } from './command.js';
import { callExample, functionFiles, invokeExample, projectFiles } from './new-templates.js';
import { write } from './output.js';

const TEMPLATES = ['rpc', 'event'] as const;

export const command = defineCommand({
  name: 'new',
  summary: 'scaffold a project, or a function in the project you are in',
  usage: '<name>',
  description: [
    'Outside a micro-fn project: creates the project <name>/ (package.json depending on this micro-fn, tsconfig.json,',
    'the function in index.ts, its test in index.test.mjs run by `npm test`, a README, .gitignore).',
    'Inside one (the nearest package.json depends on micro-fn, or is micro-fn): creates the function folder <name>/.',
  ].join('\n'),
  options: {
    template: {
      type: 'string',
      short: 't',
      value: 'rpc|event',
      description: 'an RPC handler (default) or a topic subscriber',
    },
  },
  examples: ['micro-fn new greeter', 'micro-fn new audit --template event', 'micro-fn new greeter --json'],
  async run({ positionals, values }) {
    const [name] = positionals;
    if (!name) throw new UserError('new needs a name: micro-fn new <name>');
    if (!/^[a-z][a-z0-9-]*$/.test(name))
      throw new UserError(`"${name}" is not a usable name: lower-case letters, digits and "-", starting with a letter`);
    const template = values.template ?? 'rpc';
    if (!(TEMPLATES as readonly string[]).includes(template))
      throw new UserError(`--template takes ${TEMPLATES.join(' or ')}; got "${template}"`);
    const kind = template as (typeof TEMPLATES)[number];
    const dir = resolve(name);
    if (existsSync(dir)) throw new UserError(`${name} already exists; choose another name or remove it`);
    const project = projectAbove(process.cwd()) === undefined;
    const files = {
      ...(project ? projectFiles(kind, name, microFnDependency()) : {}),
      ...functionFiles(kind, name),
    };
    await mkdir(dir, { recursive: true });
    try {
      for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text, { flag: 'wx' });
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const rel = relative(process.cwd(), dir) || '.';
    const next = project
      ? [`cd ${rel}`, 'npm install', 'npm test', invokeExample(kind, name, '.')]
      : [
          `node --test ${rel}/index.test.mjs`,
          invokeExample(kind, name, rel),
          `npx micro-fn deploy ${rel} --target local   # with micro-fn serve running`,
          callExample(kind, name),
        ];
    await write(
      process.stdout,
      values.json
        ? `${JSON.stringify({ created: dir, kind: project ? 'project' : 'function', files: Object.keys(files), next })}\n`
        : [
            `created ${project ? 'the project' : 'the function'} ${rel}/ (${Object.keys(files).join(', ')})`,
            '',
            ...next.map((line) => `  ${line}`),
            '',
          ].join('\n'),
    );
    return 0;
  },
});

/**
 * The micro-fn project `dir` is in: the folder of the nearest package.json above it, when that package is micro-fn
 * or depends on it. Undefined outside one (no package.json, or the nearest one is not a micro-fn project's).
 */
export function projectAbove(dir: string): string | undefined {
  for (let at = resolve(dir); ; at = dirname(at)) {
    const file = join(at, 'package.json');
    if (existsSync(file)) {
      let pkg: Record<string, unknown>;
      try {
        pkg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      } catch {
        throw new UserError(`${file} is not valid JSON: fix it, or run micro-fn new elsewhere`);
      }
      const depends = ['dependencies', 'devDependencies', 'peerDependencies'].some(
        (key) => typeof pkg[key] === 'object' && pkg[key] !== null && 'micro-fn' in (pkg[key] as object),
      );
      return pkg.name === 'micro-fn' || depends ? at : undefined;
    }
    if (dirname(at) === at) return undefined;
  }
}

/**
 * What a new project depends on: the micro-fn that is running. Installed from a registry, `^<version>`; installed
 * from a tarball or a folder (npm's hidden lockfile says `resolved: file:...`), that same file; run from a clone,
 * the clone (`file:` its folder). Paths are absolute, so the project can move but the source must stay.
 */
export function microFnDependency(): string {
  const root = packageRoot();
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const marker = `${sep}node_modules${sep}`;
  const at = root.lastIndexOf(marker);
  if (at === -1) return `file:${root}`;
  // <install root>/node_modules/.package-lock.json: npm's record of what it installed there, and from where.
  const installRoot = root.slice(0, at);
  const inside = root
    .slice(at + 1)
    .split(sep)
    .join('/');
  try {
    const lock = JSON.parse(readFileSync(join(installRoot, 'node_modules', '.package-lock.json'), 'utf8')) as {
      packages?: Record<string, { resolved?: unknown }>;
    };
    const resolved = lock.packages?.[inside]?.resolved;
    if (typeof resolved === 'string' && resolved.startsWith('file:'))
      return `file:${resolve(installRoot, resolved.slice('file:'.length))}`;
  } catch {
    // no lockfile (an install by another tool): the registry version
  }
  return `^${version}`;
}
