/**
 * A server stream of 100,000 small JSON values over the HTTP listener (what `micro-fn run` and serve's gateway
 * write) against a bare node:http server writing the same NDJSON, side by side in one process, alternating runs.
 * Both are read by the same reader (fetch, counting lines); a third row reads micro-fn's with `client.stream`
 * (SSE, each value decoded). Target (issue 16, through serve): ≤ 1.3× the time to first item, ≥ 0.8× items/s.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
// The package as users load it (dist/, built by `npm run bench`), not the sources through tsx.
import { createClient, createService } from 'micro-fn';
import { createHttpTransport } from 'micro-fn/http';
import { createMemoryRegistry } from 'micro-fn/memory';
import { fmt, median, ratio } from './stats.js';

export interface Run {
  first: number;
  perSecond: number;
}

/** Reads an NDJSON body with fetch, counting lines: time to the first, items per second over all of it. */
export async function readLines(url: string, body: string, expect: number): Promise<Run> {
  const start = performance.now();
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const reader = res.body!.getReader();
  let lines = 0;
  let first = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (let i = value.indexOf(10); i !== -1; i = value.indexOf(10, i + 1)) {
      if (lines++ === 0) first = performance.now() - start;
    }
  }
  const total = performance.now() - start;
  if (lines !== expect) throw new Error(`read ${lines} lines, expected ${expect}`);
  return { first, perSecond: (lines / total) * 1000 };
}

export async function benchStream(n = 100_000, rounds = 7): Promise<string[]> {
  const bare = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      let i = 0;
      const pump = () => {
        while (i < n) if (!res.write(`${JSON.stringify({ n: i++ })}\n`)) return void res.once('drain', pump);
        res.end();
      };
      pump();
    });
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  const bareUrl = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/`;

  const registry = createMemoryRegistry();
  const transport = createHttpTransport();
  const service = createService(
    {
      name: 'stream',
      handlers: {
        Numbers: {
          async *Count(req: { n: number }) {
            for (let i = 0; i < req.n; i++) yield { n: i };
          },
        },
      },
    },
    { registry, transport, address: '127.0.0.1:0' },
  );
  await service.start();
  const [node] = (await registry.getService('stream'))[0]!.nodes;
  const url = `${node!.address}/stream/Numbers.Count`;
  const client = createClient({ registry, transports: [transport], timeout: 60_000 });
  const body = JSON.stringify({ n });

  try {
    const ours: Run[] = [];
    const base: Run[] = [];
    const typed: Run[] = [];
    await readLines(url, body, n); // warm-up
    await readLines(bareUrl, body, n);
    for (let r = 0; r < rounds; r++) {
      ours.push(await readLines(url, body, n));
      base.push(await readLines(bareUrl, body, n));
      const start = performance.now();
      let first = 0;
      let count = 0;
      for await (const _ of client.stream('stream', 'Numbers.Count', { n }))
        if (count++ === 0) first = performance.now() - start;
      typed.push({ first, perSecond: (count / (performance.now() - start)) * 1000 });
    }
    const row = (runs: Run[]) => ({
      first: median(runs.map((x) => x.first)),
      perSecond: median(runs.map((x) => x.perSecond)),
    });
    const a = row(ours);
    const b = row(base);
    const c = row(typed);
    const rate = (x: number) => `${Math.round(x).toLocaleString('en')}/s`;
    return [
      `micro-fn HTTP listener, NDJSON (fetch)   first ${fmt(a.first)}  ${rate(a.perSecond)}  (n=${n}, median of ${rounds})`,
      `bare node:http NDJSON (fetch)            first ${fmt(b.first)}  ${rate(b.perSecond)}`,
      `micro-fn client.stream (SSE, decoded)    first ${fmt(c.first)}  ${rate(c.perSecond)}`,
      `listener vs bare: first ${ratio(a.first, b.first)} (target ≤ 1.3×)  items/s ${ratio(a.perSecond, b.perSecond)} (target ≥ 0.8×)`,
    ];
  } finally {
    await service.stop();
    await transport.close?.();
    await registry.close?.();
    await new Promise((r) => bare.close(r));
  }
}
