/**
 * ctx.sync (issue 17), side by side in one run:
 *  (a) local: an uncontended lock + release (a create and a delete on serve's store) vs the same two writes as
 *      plain store operations (set with revision 0, delete on the revision), one client, one `micro-fn serve`.
 *  (b) nats: the same lock + release vs nats.js KV create + delete on a bucket of its own, one nats-server.
 *  (c) local handover: a waiter on another client, from the holder's release to the waiter holding it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSync } from '../runtime/core/sync.js';
import { createHttpTransport } from '../runtime/plugins/http/index.js';
import { createFileRegistry } from '../runtime/plugins/local/registry.js';
import { createLocalStore } from '../runtime/plugins/local/store.js';
import { createLocalSync } from '../runtime/plugins/local/sync.js';
import { connectNats } from '../runtime/plugins/nats/connection.js';
import { createNatsSync } from '../runtime/plugins/nats/sync.js';
import { natsAvailable, startNatsServer } from '../test/nats-server.js';
import { startServe, stopServe } from './serve.js';
import { fmt, ratio, sideBySide, summarize } from './stats.js';

const N = 200;

export async function benchSync(): Promise<string[]> {
  const out: string[] = [];
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-sync-'));
  const servers: ChildProcess[] = [];
  const registry = createFileRegistry({ home });
  const transport = createHttpTransport();
  try {
    await startServe(['--pool', '0'], { ...process.env, MICRO_FN_HOME: home } as Record<string, string>, servers);
    const local = createLocalSync({ registry, transport, home });
    const sync = createSync(async () => local, 'bench');
    const store = createLocalStore({ registry, transport, home });
    const [locks, writes] = await sideBySide(
      N,
      20,
      async () => (await sync.lock('k', { ttl: 5000, wait: 0 })).release(),
      async () => {
        const key = 'k'; // one key, as the lock's: a create over a delete marker
        const revision = await store.set('bench-store', key, '1', { revision: 0, ttl: 5000 });
        await store.delete('bench-store', key, { revision });
      },
    );
    const a = summarize(locks);
    const b = summarize(writes);
    out.push(
      `local lock+release p50 ${fmt(a.p50)} p99 ${fmt(a.p99)} | store create+delete p50 ${fmt(b.p50)} p99 ${fmt(b.p99)} | ${ratio(a.p50, b.p50)}`,
    );
    const second = createLocalSync({ registry, transport, home });
    const other = createSync(async () => second, 'bench');
    const handover: number[] = [];
    for (let r = 0; r < 30; r++) {
      const lease = await sync.lock('h', { ttl: 5000 });
      const waiting = other.lock('h', { ttl: 5000, wait: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 30));
      const t = performance.now();
      await lease.release();
      await (await waiting).release();
      handover.push(performance.now() - t);
    }
    const h = summarize(handover);
    out.push(`local handover release → waiter holds (polling 10-250 ms): p50 ${fmt(h.p50)} p99 ${fmt(h.p99)}`);
  } finally {
    await stopServe(servers);
    await Promise.allSettled([transport.close(), registry.close?.()]);
    rmSync(home, { recursive: true, force: true });
  }
  if (!natsAvailable()) return [...out, 'nats: skipped (no nats-server)'];
  const server = await startNatsServer();
  try {
    const backend = createNatsSync({ address: server.url });
    const sync = createSync(async () => backend, 'bench');
    const nc = await connectNats({ address: server.url });
    const kv = await nc.jetstream().views.kv('bench_bare', { history: 1 });
    const [locks, bare] = await sideBySide(
      N,
      20,
      async () => (await sync.lock('k', { ttl: 5000, wait: 0 })).release(),
      async () => {
        const key = 'k'; // one key, as the lock's: a create over a delete marker
        const revision = await kv.create(key, new Uint8Array(1));
        await kv.delete(key, { previousSeq: revision });
      },
    );
    const a = summarize(locks);
    const b = summarize(bare);
    out.push(
      `nats lock+release p50 ${fmt(a.p50)} p99 ${fmt(a.p99)} | nats.js KV create+delete p50 ${fmt(b.p50)} p99 ${fmt(b.p99)} | ${ratio(a.p50, b.p50)}`,
    );
    await backend.close();
    await nc.close();
  } finally {
    await server.cleanup();
  }
  return out;
}
