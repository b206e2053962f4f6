/**
 * HTTP transport round trip (client -> listener -> dispatcher -> handler -> reply) against a bare node:http
 * JSON echo server, side by side in one process. Both are called with the same client stack (fetch).
 * Target (issue 18): ≤ 1.15× the bare server at p50.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
// The package as users load it (dist/, built by `npm run bench`), not the sources through tsx.
import { createClient, createService } from 'micro-fn';
import { createHttpTransport } from 'micro-fn/http';
import { createMemoryRegistry } from 'micro-fn/memory';
import { fmt, ratio, sideBySide, summarize } from './stats.js';

export async function benchHttp(n = 5000): Promise<string[]> {
  const bare = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { name: string };
      const out = JSON.stringify({ message: `Hello ${body.name}` });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/`;

  const registry = createMemoryRegistry();
  const transport = createHttpTransport();
  const service = createService(
    { name: 'helloworld', handlers: { Greeter: { Hello: (r: { name: string }) => ({ message: `Hello ${r.name}` }) } } },
    { registry, transport },
  );
  await service.start();
  const client = createClient({ registry, transports: [transport] });

  try {
    const payload = JSON.stringify({ name: 'Ada' });
    const [ours, base] = await sideBySide(
      n,
      500,
      () => client.call('helloworld', 'Greeter.Hello', { name: 'Ada' }),
      async () =>
        (
          await fetch(bareUrl, { method: 'POST', body: payload, headers: { 'content-type': 'application/json' } })
        ).json(),
    );
    const a = summarize(ours);
    const b = summarize(base);
    return [
      `micro-fn client.call over HTTP    p50 ${fmt(a.p50)}  p99 ${fmt(a.p99)}  (n=${a.n})`,
      `bare node:http echo (fetch)       p50 ${fmt(b.p50)}  p99 ${fmt(b.p99)}`,
      `ratio at p50: ${ratio(a.p50, b.p50)}  (target ≤ 1.15×)   at p99: ${ratio(a.p99, b.p99)}`,
    ];
  } finally {
    await service.stop();
    await transport.close?.();
    await registry.close?.();
    await new Promise((r) => bare.close(r));
  }
}
