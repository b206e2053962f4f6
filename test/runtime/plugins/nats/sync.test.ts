/**
 * NATS sync passes the sync contract on a real nats-server with JetStream: two hosts, each a connection of its own;
 * the killed holder a process of its own with a third.
 */
import type { ChildProcess } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createNatsSync } from '../../../../runtime/plugins/nats/sync.js';
import { killHolders, startHolder, syncContract } from '../../../contracts/sync.js';
import { natsAvailable, startNatsServer } from '../../../nats-server.js';
import { rejects, withTimeout } from '../../../helpers.js';

if (natsAvailable())
  syncContract('NATS sync contract (JetStream KV, two connections)', async () => {
    const server = await startNatsServer();
    const hosts = [createNatsSync({ address: server.url }), createNatsSync({ address: server.url })];
    const holders: ChildProcess[] = [];
    return {
      hosts: 2,
      backend: (host) => hosts[host]!,
      holder: (namespace, key, ttl) => startHolder(holders, 'nats', server.url, namespace, key, ttl),
      async cleanup() {
        killHolders(holders);
        await Promise.allSettled(hosts.map((h) => h.close()));
        await server.cleanup();
      },
    };
  });

if (natsAvailable()) {
  const reconnect = suite('NATS sync: a server down at its first use');

  reconnect('is tried again on the next use once the server is up: 1 failure, then the write lands', async () => {
    const server = await startNatsServer();
    const sync = createNatsSync({ address: server.url });
    try {
      await withTimeout(server.stop(), 15_000, 'stopping nats-server');
      await rejects(() => withTimeout(sync.get('ns', 'k'), 15_000, 'a read while the server is down'));
      await withTimeout(server.restart(), 15_000, 'restarting nats-server');
      const revision = await withTimeout(sync.set('ns', 'k', '"v"', {}), 15_000, 'a write once it is up');
      assert.ok(revision > 0);
      assert.is((await sync.get('ns', 'k'))?.value, '"v"');
    } finally {
      await sync.close();
      await server.cleanup();
    }
  });

  reconnect.run();
}
