/** Registering what a deploy put somewhere nothing refreshes it (a Lambda function, a Worker). Build-time only. */
import type { Registry, ServiceRecord } from '../../runtime/core/registry.js';

/**
 * Registers `record` without a TTL (nothing runs between invocations to refresh it). Its node ids stay the same
 * across deploys, so a redeploy replaces the entry; a registration of another version of the service on the
 * same node goes.
 */
export async function registerDeployment(registry: Registry, record: ServiceRecord): Promise<void> {
  const ids = new Set(record.nodes.map((n) => n.id));
  for (const old of await registry.getService(record.name)) {
    const same = old.nodes.filter((n) => ids.has(n.id));
    if (old.version !== record.version && same.length > 0) await registry.deregister({ ...old, nodes: same });
  }
  await registry.register(record, { ttl: 0 });
}
