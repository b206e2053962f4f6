/** The files `micro-fn new` writes: a function (rpc or event) with its test, and around it, outside a project, the project. */

/** The function's own files: `index.ts` and `index.test.mjs`, a node:test suite that invokes it. */
export function functionFiles(template: 'rpc' | 'event', name: string): Record<string, string> {
  return template === 'rpc' ? rpc(name) : event(name);
}

/** How to invoke the function once, as the printed next steps and the README show it (`entry` as the user types it). */
export function invokeExample(template: 'rpc' | 'event', name: string, entry: string): string {
  return template === 'rpc'
    ? `npx micro-fn invoke ${entry} Handler.Call '{"name":"Ada"}'`
    : `npx micro-fn invoke ${entry} --topic ${name}.event '{"id":1}'`;
}

/** How to call it through serve once deployed (`publish` for an event function). */
export function callExample(template: 'rpc' | 'event', name: string): string {
  return template === 'rpc'
    ? `npx micro-fn call ${name} Handler.Call '{"name":"Ada"}'`
    : `npx micro-fn publish ${name}.event '{"id":1}'`;
}

/**
 * The project around a function: package.json (depending on micro-fn as `dependency` says), tsconfig.json, a
 * README of three commands and .gitignore.
 */
export function projectFiles(template: 'rpc' | 'event', name: string, dependency: string): Record<string, string> {
  const pkg = {
    name,
    version: '0.1.0',
    private: true,
    type: 'module',
    scripts: {
      test: 'node --test',
      typecheck: 'tsc',
      invoke: 'micro-fn invoke .',
      serve: 'micro-fn serve',
      deploy: 'micro-fn deploy . --target local',
    },
    dependencies: { 'micro-fn': dependency },
    devDependencies: { '@types/node': '^20.19.0', typescript: '~5.9.3' },
    engines: { node: '>=20' },
  };
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      noEmit: true,
      verbatimModuleSyntax: true,
      isolatedModules: true,
      skipLibCheck: true,
      types: ['node'],
    },
    include: ['**/*.ts'],
    exclude: ['node_modules'],
  };
  return {
    'package.json': `${JSON.stringify(pkg, null, 2)}\n`,
    'tsconfig.json': `${JSON.stringify(tsconfig, null, 2)}\n`,
    '.gitignore': 'node_modules/\n.micro-fn/\n*.log\n',
    'README.md': `# ${name}

A one-shot function (micro-fn): each invocation runs in a fresh process that serves exactly one ${
      template === 'rpc' ? 'request' : 'message'
    }.

\`\`\`sh
# 1. the test: index.test.mjs invokes the function in a fresh process
npm test
# 2. one invocation, no server: the reply on stdout
${invokeExample(template, name, '.')}
# 3. through the local runtime: serve in one terminal, deploy and call from another
npm run serve
npm run deploy && ${callExample(template, name)}
\`\`\`

\`index.ts\` is the function. \`npx micro-fn --help\` lists every command (\`micro-fn deploy . --target lambda\`,
\`--target cloudflare\`, ...).
`,
  };
}

const testPrelude = `import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The micro-fn CLI of the installed package (its bin), run as a process: the function runs as it will in production.
const require = createRequire(import.meta.url);
const pkg = require.resolve('micro-fn/package.json');
const bin = join(dirname(pkg), require(pkg).bin['micro-fn']);
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
