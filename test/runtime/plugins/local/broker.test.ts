/**
 * The local broker (a client of the broker `micro-fn serve` hosts) passes the broker contract: a real serve
 * runtime in this process, on 127.0.0.1, found through a file registry, reached over HTTP like any other process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHttpTransport } from '../../../../runtime/plugins/http/index.js';
import { createLocalBroker } from '../../../../runtime/plugins/local/broker.js';
import { createFileRegistry } from '../../../../runtime/plugins/local/registry.js';
import { createMemoryBroker } from '../../../../runtime/plugins/memory/broker.js';
import { LocalRuntime } from '../../../../serve/runtime.js';
import { brokerContract } from '../../../contracts/broker.js';

brokerContract('LocalBroker contract (through a micro-fn serve runtime)', async () => {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-local-broker-'));
  const registry = createFileRegistry({ home });
  const hosted = createMemoryBroker();
  const runtime = new LocalRuntime({
    home,
    registry,
    broker: hosted,
    address: '127.0.0.1:0',
    env: {},
    pool: 0,
    concurrency: 1,
    queue: 0,
    timeout: 5000,
    memory: 64,
    ttl: 60,
    echo: false,
    // A subscriber that stops polling gives its deliveries back after this: short, as the contract's waits are.
    ackWait: 2000,
  });
  await runtime.start();
  const transport = createHttpTransport();
  // home: subscribing needs the credential serve made there.
  const broker = createLocalBroker({ registry, transport, home });
  return {
    broker,
    async cleanup() {
      await broker.close();
      await runtime.stop();
      await Promise.allSettled([transport.close(), hosted.close(), registry.close?.()]);
      rmSync(home, { recursive: true, force: true });
    },
  };
});
