/**
 * Local sync passes the sync contract with two hosts: two real `micro-fn serve` processes on one MICRO_FN_HOME
 * (sharing its LMDB store), host 0's clients talking to the first only and host 1's to the second only. The killed
 * holder is a process of its own (test/fixtures/sync-holder/hold.ts), SIGKILLed while it holds the lock. Needs
 * `npm run build`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Registry, ServiceRecord } from '../../../../runtime/core/registry.js';
import { createHttpTransport } from '../../../../runtime/plugins/http/index.js';
import { RUNTIME_SERVICE } from '../../../../runtime/plugins/local/protocol.js';
import { createFileRegistry } from '../../../../runtime/plugins/local/registry.js';
import { createLocalSync } from '../../../../runtime/plugins/local/sync.js';
import { root, start, tempHome, type Running } from '../../../cli/helpers.js';
import { syncContract } from '../../../contracts/sync.js';
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
    const holders: ReturnType<typeof spawn>[] = [];
    return {
      hosts: 2,
      backend: (host) => hosts[host]!,
      async holder(namespace, key, ttl) {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', join(root, 'test/fixtures/sync-holder/hold.ts'), scratch.home, namespace, key, `${ttl}`],
          { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
        );
        holders.push(child);
        let out = '';
        child.stdout!.on('data', (d: Buffer) => (out += d));
        const line = await withTimeout(
          new Promise<string>((resolve, reject) => {
            child.stdout!.on('data', () => out.includes('\n') && resolve(out.split('\n')[0]!));
            child.on('exit', (code) => reject(new Error(`the holder exited with ${code} before holding`)));
          }),
          20_000,
          'the holder taking the lock',
        );
        const { token, before } = JSON.parse(line) as { token: number; before: number };
        return {
          token,
          before,
          async kill() {
            const exited = once(child, 'exit');
            child.kill('SIGKILL');
            await exited;
          },
        };
      },
      async cleanup() {
        for (const h of holders) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL');
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
