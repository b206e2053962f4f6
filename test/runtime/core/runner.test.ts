/** listenOnce: the standalone one-shot instance (`micro-fn run`) on real sockets, under the faults it meets. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { listenOnce, type FunctionOutcome, type ServiceDefinition } from '../../../runtime/index.js';
import { createMemoryRegistry } from '../../../runtime/plugins/memory/index.js';
import { createHttpTransport } from '../../../runtime/plugins/http/index.js';
import { withTimeout } from '../../helpers.js';
import { burst, tally } from './burst.js';

const hello: ServiceDefinition = {
  name: 'hello',
  handlers: { Greeter: { Hello: (req: { name: string }) => ({ message: `Hello ${req.name}` }) } },
};

/** Starts `definition` standalone on HTTP with a memory registry; resolves once it listens. */
async function standalone(definition: ServiceDefinition, options: { timeout?: number; signal?: AbortSignal } = {}) {
  const registry = createMemoryRegistry();
  const transport = createHttpTransport();
  let listening!: (address: string) => void;
  const address = new Promise<string>((resolve) => (listening = resolve));
  const done: Promise<FunctionOutcome> = listenOnce(definition, {
    env: {},
    plugins: { registry, transports: [transport], close: async () => void (await transport.close()) },
    transport,
    address: '127.0.0.1:0',
    onListening: listening,
    ...options,
  });
  return { address: await withTimeout(address, 5000, 'listening'), done, registry };
}

// ---
const closing = suite('listenOnce: closing');

closing('answers 20 pre-connected requests written at once with 1 × 200 and 19 × 503, 100 of 100 times', async () => {
  const runs: Record<string, number>[] = [];
  for (let i = 0; i < 100; i++) {
    const fn = await standalone(hello);
    const results = await burst(fn.address, '/hello/Greeter.Hello', '{"name":"Ada"}');
    await withTimeout(fn.done, 5000, 'the instance ending');
    runs.push(tally(results));
  }
  const bad = runs.filter((counts) => counts[200] !== 1 || counts[503] !== 19);
  assert.is(bad.length, 0, `${bad.length} of 100 runs were not 1 × 200 + 19 × 503: ${JSON.stringify(bad.slice(0, 5))}`);
});

closing.run();
