/**
 * A separate process for the FileRegistry tests: `node --import tsx writer.ts <home> <worker> <mode>`.
 * - churn: registers nodes `<worker>-0..49` of greeter@1.0.0, deregisters them all, registers the even ones
 *   again, then exits 0.
 * - rewrite: registers node `hot` of hot@1.0.0 again and again (with a large metadata value) until killed.
 * Exits on its own when its stdin closes (the test process died) or after 30 s, so it never lingers.
 */
import { createFileRegistry } from '../../../../runtime/plugins/local/registry.js';
import type { ServiceRecord } from '../../../../runtime/core/registry.js';

const [home, worker = '0', mode = 'churn'] = process.argv.slice(2);
const registry = createFileRegistry({ home });
process.stdin.on('end', () => process.exit(0)).resume();
setTimeout(() => process.exit(2), 30_000).unref();

const service = (name: string, ids: string[], metadata: Record<string, string> = {}): ServiceRecord => ({
  name,
  version: '1.0.0',
  metadata: { worker },
  endpoints: [{ name: 'Greeter.Hello', metadata: {} }],
  nodes: ids.map((id) => ({ id, address: `http://127.0.0.1/${id}`, metadata })),
});

if (mode === 'churn') {
  const ids = Array.from({ length: 50 }, (_, i) => `${worker}-${i}`);
  await Promise.all(ids.map((id) => registry.register(service('greeter', [id]))));
  await Promise.all(ids.map((id) => registry.deregister(service('greeter', [id]))));
  await Promise.all(ids.filter((_, i) => i % 2 === 0).map((id) => registry.register(service('greeter', [id]))));
  process.exit(0);
} else {
  const pad = 'x'.repeat(256 * 1024);
  for (let i = 0; ; i++) await registry.register(service('hot', ['hot'], { i: String(i), pad }));
}
