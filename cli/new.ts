import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { defineCommand } from './command.js';

const TEMPLATES = ['rpc', 'event'] as const;

export const command = defineCommand({
  name: 'new',
  summary: 'scaffold a function that builds, runs and has a test',
  usage: '<name>',
  description:
    'Creates the folder <name> with index.ts (the function) and index.test.mjs (a node:test suite that invokes it).',
  options: {
    template: {
      type: 'string',
      short: 't',
      value: 'rpc|event',
      description: 'an RPC handler (default) or a topic subscriber',
    },
  },
  examples: ['micro-fn new greeter', 'micro-fn new audit --template event'],
  async run({ positionals, values }) {
    const [name] = positionals;
    if (!name) throw new UserError('new needs a name: micro-fn new <name>');
    if (!/^[a-z][a-z0-9-]*$/.test(name))
      throw new UserError(`"${name}" is not a usable name: lower-case letters, digits and "-", starting with a letter`);
    const template = values.template ?? 'rpc';
    if (!(TEMPLATES as readonly string[]).includes(template))
      throw new UserError(`--template takes ${TEMPLATES.join(' or ')}; got "${template}"`);
    const dir = resolve(name);
    if (existsSync(dir)) throw new UserError(`${name} already exists; choose another name or remove it`);
    await mkdir(dir, { recursive: true });
    const files = template === 'rpc' ? rpc(name) : event(name);
    for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
    const rel = relative(process.cwd(), dir) || '.';
    process.stdout.write(
      [
        `created ${rel}/ (${Object.keys(files).join(', ')})`,
        '',
        template === 'rpc'
          ? `  npx micro-fn invoke ${rel} Handler.Call '{"name":"Ada"}'`
          : `  npx micro-fn invoke ${rel} --topic ${name}.event '{"id":1}'`,
        `  node --test ${rel}/index.test.mjs`,
        `  npx micro-fn deploy ${rel} --target local`,
        '',
      ].join('\n'),
    );
    return 0;
  },
});

const testPrelude = `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The micro-fn CLI of the installed package, run as a process: the function runs as it will in production.
const pkg = createRequire(import.meta.url).resolve('micro-fn/package.json');
const bin = join(dirname(pkg), 'cli', 'bin.mjs');
const here = dirname(fileURLToPath(import.meta.url));
const { NODE_OPTIONS, ...env } = process.env;
const invoke = (...args) => execFileSync(process.execPath, [bin, 'invoke', here, ...args], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] });
`;

function rpc(name: string): Record<string, string> {
  return {
    'index.ts': `import { defineFunction, errors, type Context } from 'micro-fn';

interface CallRequest {
  name?: unknown;
}

export default defineFunction({
  name: '${name}',
  handlers: {
    Handler: {
      Call(req: CallRequest, ctx: Context) {
        if (typeof req?.name !== 'string' || req.name === '') throw errors.badRequest(ctx.service, 'name is required');
        return { message: \`Hello \${req.name}\` };
      },
    },
  },
});
`,
    'index.test.mjs': `${testPrelude}
test('Handler.Call greets by name', () => {
  assert.deepEqual(JSON.parse(invoke('Handler.Call', '{"name":"Ada"}')), { message: 'Hello Ada' });
});

test('Handler.Call answers 400 without a name', () => {
  assert.throws(() => invoke('Handler.Call', '{}'), (err) => JSON.parse(err.stderr.trim().split('\\n').at(-1)).code === 400);
});
`,
  };
}

function event(name: string): Record<string, string> {
  return {
    'index.ts': `import { defineFunction, errors, type MessageContext } from 'micro-fn';

interface Event {
  id?: unknown;
}

export default defineFunction({
  name: '${name}',
  subscribers: {
    // Each message runs the function once; throwing fails it, and the broker delivers it again.
    '${name}.event': (event: Event, ctx: MessageContext) => {
      if (typeof event?.id !== 'number') throw errors.badRequest(ctx.service, 'id must be a number');
      ctx.logger.info(\`handled event \${event.id}\`, { attempt: ctx.attempt });
    },
  },
});
`,
    'index.test.mjs': `${testPrelude}
test('${name}.event is handled', () => {
  invoke('--topic', '${name}.event', '{"id":1}');
});

test('a bad ${name}.event fails, so the broker would redeliver it', () => {
  assert.throws(() => invoke('--topic', '${name}.event', '{"id":"x"}'));
});
`,
  };
}
