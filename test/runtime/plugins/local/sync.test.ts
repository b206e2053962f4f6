/**
 * Local sync passes the sync contract with two hosts: two real `micro-fn serve` processes on one MICRO_FN_HOME
 * (sharing its LMDB store), host 0's clients talking to the first only and host 1's to the second only. The killed
 * holder is a process of its own (test/fixtures/sync-holder/hold.ts), SIGKILLed while it holds the lock. Needs
 * `npm run build`.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { MicroError } from '../../../../runtime/core/errors.js';
import { SYNC_LOST, createSync } from '../../../../runtime/core/sync.js';
import type { Registry, ServiceRecord } from '../../../../runtime/core/registry.js';
import { createHttpTransport } from '../../../../runtime/plugins/http/index.js';
import { RUNTIME_SERVICE } from '../../../../runtime/plugins/local/protocol.js';
import { createFileRegistry } from '../../../../runtime/plugins/local/registry.js';
import { createLocalSync } from '../../../../runtime/plugins/local/sync.js';
import { start, tempHome, type Running } from '../../../cli/helpers.js';
import { killHolders, startHolder, syncContract } from '../../../contracts/sync.js';
import { withTimeout } from '../../../helpers.js';

/** `registry`, showing only the serve at `address` as the runtime service: a client of that host alone. */
function onlyServe(registry: Registry, address: string): Registry {
  const pick = (records: ServiceRecord[]) =>
    records.map((r) =>
      r.name === RUNTIME_SERVICE ? { ...r, nodes: r.nodes.filter((n) => n.address.includes(address)) } : r,
    );
  return new Proxy(registry, {
    get(target, prop, receiver) {
      if (prop === 'getService') return async (name: string) => pick(await target.getService(name));
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

syncContract('local sync contract (two micro-fn serve processes on one MICRO_FN_HOME)', async () => {
  const scratch = tempHome();
  const env = { MICRO_FN_HOME: scratch.home };
  const serves: Running[] = [];
  const stop = async () => {
    for (const s of serves) s.child.kill('SIGTERM');
    await Promise.all(serves.map((s) => s.exited(10_000).catch(() => s.kill())));
  };
  try {
    const addresses: string[] = [];
    for (let i = 0; i < 2; i++) {
      const serve = start(['serve', '--address', '127.0.0.1:0', '--quiet', '--pool', '0'], env);
      serves.push(serve);
      const [, address] = (await serve.waitFor(/listening on http:\/\/(127\.0\.0\.1:\d+)/)) as [string, string];
      addresses.push(address);
    }
    const registry = createFileRegistry({ home: scratch.home });
    const transport = createHttpTransport();
    const views = addresses.map((a) => onlyServe(registry, a));
    for (const [i, view] of views.entries()) {
      const nodes = (await view.getService(RUNTIME_SERVICE)).flatMap((r) => r.nodes.map((n) => n.address));
      if (nodes.length !== 1) throw new Error(`host ${i} sees ${nodes.length} serve nodes, not 1: ${nodes.join(' ')}`);
    }
    const hosts = views.map((view) => createLocalSync({ registry: view, transport, home: scratch.home }));
    const holders: ChildProcess[] = [];
    return {
      hosts: 2,
      backend: (host) => hosts[host]!,
      holder: (namespace, key, ttl) => startHolder(holders, 'local', scratch.home, namespace, key, ttl),
      async cleanup() {
        killHolders(holders);
        await stop();
        await Promise.allSettled([transport.close(), registry.close?.()]);
        scratch.cleanup();
      },
    };
  } catch (err) {
    await stop();
    scratch.cleanup();
    throw err;
  }
});

// ---

const killed = suite('local sync when the serve a holder talks to is SIGKILLed');

killed(
  'the holder loses the lock at its TTL (signal, not before the other host can take it); the other serve gives it on, with a greater token',
  async () => {
    const scratch = tempHome();
    const env = { MICRO_FN_HOME: scratch.home };
    const serves: Running[] = [];
    const registry = createFileRegistry({ home: scratch.home });
    const transport = createHttpTransport();
    try {
      const addresses: string[] = [];
      for (let i = 0; i < 2; i++) {
        const serve = start(['serve', '--address', '127.0.0.1:0', '--quiet', '--pool', '0'], env);
        serves.push(serve);
        addresses.push((await serve.waitFor(/listening on http:\/\/(127\.0\.0\.1:\d+)/))[1]!);
      }
      const [first, second] = addresses.map((a) =>
        createSync(
          async () => createLocalSync({ registry: onlyServe(registry, a), transport, home: scratch.home }),
          'k',
        ),
      );
      const ttl = 1500;
      const before = Date.now();
      const lease = await first!.lock('serve-killed', { ttl });
      const lost = new Promise<number>((resolve) => lease.signal.addEventListener('abort', () => resolve(Date.now())));
      const gone = once(serves[0]!.child, 'exit');
      serves[0]!.kill(); // SIGKILL: the holder's renewals now find no serve at that address
      await gone;
      const next = await withTimeout(
        second!.lock('serve-killed', { ttl, wait: 20 * ttl }),
        30 * ttl,
        'the next holder',
      );
      const got = Date.now();
      assert.ok(got - before >= ttl, `the other host got it after the TTL (${got - before} ms >= ${ttl})`);
      const lostAt = await withTimeout(lost, 5000, 'the holder losing it');
      assert.ok(lostAt <= got, 'the holder stopped calling itself the holder first');
      assert.is((lease.signal.reason as MicroError).id, SYNC_LOST);
      assert.ok(next.token > lease.token, `${next.token} > ${lease.token}`);
      await next.release();
    } finally {
      for (const s of serves) s.kill();
      await Promise.all(serves.map((s) => (s.child.exitCode ?? s.child.signalCode) === null && once(s.child, 'exit')));
      await Promise.allSettled([transport.close(), registry.close?.()]);
      scratch.cleanup();
    }
  },
);

killed.run();
