/**
 * The Cloudflare Workers target, in real workerd (miniflare), each figure against a bare module worker that
 * answers the same JSON, measured side by side in the same run:
 *  (a) helloworld's bundle, minified (one module, all loaded at start; issue 18's target: at most 20 KB), and a
 *      function that publishes with the NATS plugins its configuration selects (helloworld never calls out, so it
 *      carries none whatever its configuration says);
 *  (b) cold start, a new workerd with the Worker up to its first response: helloworld, and the function that
 *      publishes configured for NATS (workerd compiles the whole module at start);
 *  (c) per-request latency, warm, over HTTP to workerd on 127.0.0.1.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, type MiniflareOptions } from 'miniflare';
import { buildCloudflare, type CloudflareBuild } from '../adapters/cloudflare/build.js';
import { COMPATIBILITY_DATE } from '../adapters/cloudflare/deploy.js';
import { fmt, ratio, sideBySide, summarize } from './stats.js';

const BODY = '{"name":"Ada"}';
const PATH = '/helloworld/Greeter.Hello';

/** The baseline: a module worker that does the same work with nothing of micro-fn. */
const BARE = `export default {
  async fetch(request) {
    const { name } = await request.json();
    return new Response(JSON.stringify({ message: 'Hello ' + name }), { headers: { 'content-type': 'application/json' } });
  },
};`;

interface Options {
  coldRuns?: number;
  requests?: number;
}

export async function benchCloudflare({
  coldRuns = Number(process.env.BENCH_COLD_RUNS ?? 10),
  requests = Number(process.env.BENCH_REQUESTS ?? 500),
}: Options = {}): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-bench-cf-'));
  const running: Miniflare[] = [];
  const start = (options: MiniflareOptions) => {
    const mf = new Miniflare({
      ...options,
      compatibilityDate: COMPATIBILITY_DATE,
      host: '127.0.0.1',
      port: 0,
    } as MiniflareOptions);
    running.push(mf);
    return mf;
  };
  const cold = async (options: MiniflareOptions, path = PATH) => {
    const mf = start(options);
    await answer(`${(await mf.ready).origin}${path}`);
    await mf.dispose();
  };
  try {
    // (a)
    const entry = fileURLToPath(new URL('../examples/helloworld/index.ts', import.meta.url));
    const plain = await buildCloudflare(entry, { outdir: join(dir, 'plain'), minify: true });
    // A function that calls out (it publishes): helloworld never does, so it carries no registry or broker plugin.
    const caller = fileURLToPath(new URL('../test/fixtures/cloudflare/index.ts', import.meta.url));
    const withNats = await buildCloudflare(caller, {
      outdir: join(dir, 'nats'),
      minify: true,
      env: { MICRO_REGISTRY: 'nats', MICRO_BROKER: 'nats', MICRO_REGISTRY_ADDRESS: 'wss://nats.example.com' },
    });
    const bytes = (b: CloudflareBuild) => b.artifacts.reduce((sum, a) => sum + a.size, b.size);
    const out = [
      `(a) helloworld, minified: ${kb(plain.startSize)} loaded at start, ${kb(bytes(plain))} in all (target ≤ 20 KB: ${plain.startSize <= 20_000 ? 'met' : 'MISSED'}; workerd compiles every uploaded module at start)`,
      `    a function that publishes, configured for NATS (registry, broker): ${kb(withNats.startSize)} at start, ${kb(bytes(withNats))} in all`,
    ];

    // (b)
    const bare: MiniflareOptions = { modules: true, script: BARE };
    for (const [label, built, path] of [
      ['helloworld', plain, PATH],
      ['a function that publishes, configured for NATS', withNats, '/cfdemo/Greeter.Hello'],
    ] as const) {
      const [ours, base] = await sideBySide(
        coldRuns,
        1,
        () => cold(worker(built), path),
        () => cold(bare),
      );
      const a = summarize(ours);
      const b = summarize(base);
      out.push(
        `(b) cold start to first response, ${label}: p50 ${fmt(a.p50)}  bare ${fmt(b.p50)}  ratio ${ratio(a.p50, b.p50)}  (n=${a.n})`,
      );
    }

    // (c)
    const [urlOurs, urlBare] = await Promise.all([start(worker(plain)).ready, start(bare).ready]);
    const [warmOurs, warmBare] = await sideBySide(
      requests,
      50,
      () => answer(`${urlOurs.origin}${PATH}`),
      () => answer(`${urlBare.origin}${PATH}`),
    );
    const wa = summarize(warmOurs);
    const wb = summarize(warmBare);
    out.push(
      `(c) per request, warm: p50 ${fmt(wa.p50)} p99 ${fmt(wa.p99)}  bare p50 ${fmt(wb.p50)} p99 ${fmt(wb.p99)}  ratio at p50 ${ratio(wa.p50, wb.p50)}  (n=${wa.n})`,
    );
    return out;
  } finally {
    await Promise.allSettled(running.map((mf) => mf.dispose()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every module of a build, as miniflare takes them. */
function worker(built: CloudflareBuild): MiniflareOptions {
  return {
    modules: [built.file, ...built.artifacts.map((a) => a.file)].map((path) => ({ type: 'ESModule' as const, path })),
    modulesRoot: dirname(built.file),
  };
}

async function answer(url: string): Promise<void> {
  const res = await fetch(url, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json' } });
  const text = await res.text();
  if (res.status !== 200 || !text.includes('Hello Ada')) throw new Error(`${res.status} ${text}`);
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
