/**
 * NATS sync passes the sync contract on a real nats-server with JetStream: two hosts, each a connection of its own;
 * the killed holder a process of its own with a third.
 */
import type { ChildProcess } from 'node:child_process';
import { createNatsSync } from '../../../../runtime/plugins/nats/sync.js';
import { killHolders, startHolder, syncContract } from '../../../contracts/sync.js';
import { natsAvailable, startNatsServer } from '../../../nats-server.js';

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
