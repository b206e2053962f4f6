/** Registering what a deploy put somewhere nothing refreshes it (a Lambda function, a Worker). Build-time only. */
import type { NodeRecord, Registry, ServiceRecord } from '../../runtime/core/registry.js';
import { Router, type ServiceDefinition } from '../../runtime/core/router.js';

/**
 * The registry entry of a deployed function: its endpoints and topics at `node`. Give the node an id that stays the
 * same across deploys (`<service>-<target>`), so a redeploy replaces the entry rather than adding one.
 */
export function deploymentRecord(definition: ServiceDefinition, node: NodeRecord): ServiceRecord {
  return {
    name: definition.name,
    version: definition.version ?? 'latest',
    metadata: { ...definition.metadata },
    endpoints: new Router(definition).endpoints(),
    nodes: [node],
  };
}

/**
 * Registers `record` without a TTL (nothing runs between invocations to refresh it). Its node ids stay the same
 * across deploys, so a redeploy replaces the entry; a registration of another version of the service on the
 * same node goes.
 *
 * Why no TTL: the platform (AWS Lambda, Cloudflare, wherever a Deno module runs) answers for the function whether or
 * not anything runs on this machine, so an entry that lapsed would hide a function that can be called. The node says
 * what answers for it (its address, `target`, and for Lambda the `lambda-endpoint` when it is not AWS's), and
 * `micro-fn remove --target T` takes the function and the entry away together. The one host here that does run
 * between invocations, micro-fn serve's Lambda API, takes the entries naming it over and keeps them with a TTL
 * (serve/lambda/entries.ts).
 */
export async function registerDeployment(registry: Registry, record: ServiceRecord): Promise<void> {
  const ids = new Set(record.nodes.map((n) => n.id));
  for (const old of await registry.getService(record.name)) {
    const same = old.nodes.filter((n) => ids.has(n.id));
    if (old.version !== record.version && same.length > 0) await registry.deregister({ ...old, nodes: same });
  }
  await registry.register(record, { ttl: 0 });
}
