/** runtime/core must run unchanged in Node, Lambda and workerd: no node: import, no package, no Node globals. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';

const core = fileURLToPath(new URL('../../../runtime/core/index.ts', import.meta.url));

// ---
const neutral = suite('runtime/core');

neutral('bundles for platform neutral with every import resolving to a file of its own', async () => {
  const outside: string[] = [];
  const result = await esbuild.build({
    entryPoints: [core],
    bundle: true,
    platform: 'neutral',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'only-relative',
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) => {
            if (args.kind !== 'entry-point' && !args.path.startsWith('./') && !args.path.startsWith('../'))
              outside.push(`${args.path} (from ${args.importer})`);
            return undefined;
          });
        },
      },
    ],
  });
  assert.equal(outside, [], `runtime/core imports something that is not its own file`);
  const code = result.outputFiles[0]!.text;
  assert.ok(code.length > 1000, 'the bundle holds the core');
  for (const global of [/\bprocess\./, /\bBuffer\b/, /\brequire\(/, /\b__dirname\b/, /\bsetImmediate\b/]) {
    assert.not.match(code, global, `runtime/core uses the Node-only ${global}`);
  }
});

neutral.run();
