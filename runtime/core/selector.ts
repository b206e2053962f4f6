import type { NodeRecord } from './registry.js';

/** Picks the node for the next attempt of a call to `service`. `nodes` is never empty. */
export type Selector = (service: string, nodes: readonly NodeRecord[]) => NodeRecord;

/** Any node, uniformly at random (the default). */
export function random(): Selector {
  return (_service, nodes) => nodes[Math.floor(Math.random() * nodes.length)] as NodeRecord;
}

/** Nodes in turn, a counter per service. */
export function roundRobin(): Selector {
  const counters = new Map<string, number>();
  return (service, nodes) => {
    const n = counters.get(service) ?? Math.floor(Math.random() * nodes.length);
    counters.set(service, (n + 1) % 1_000_000_000);
    return nodes[n % nodes.length] as NodeRecord;
  };
}
