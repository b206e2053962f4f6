/**
 * The reading of registry records that every registry shares: copies, the description of a version, a stored
 * per-node entry, the merge of per-node entries into ServiceRecords, and the comparisons that decide whether a
 * registration is a watch event. One implementation, so the memory, file and NATS registries (and a plugin
 * author's own) answer the Registry contract alike.
 */
import type { NodeRecord, ServiceRecord } from './registry.js';

/**
 * A service version as registered, without its nodes. A registry keeps one per name+version (memory) or one
 * beside every node (files, KV keys), and puts the nodes back when it answers.
 */
export type ServiceDescription = Omit<ServiceRecord, 'nodes'>;

/**
 * What a registry that stores one entry per node (a file, a KV key) keeps in each entry. The file and the NATS
 * registries write this shape, so an entry is read, expired and merged the same way whichever stores it.
 */
export interface NodeEntry {
  service: ServiceDescription;
  node: NodeRecord;
  /** Epoch ms after which the node is gone; 0: never. */
  expires: number;
  /** Epoch ms of the registration; 0 when the entry did not say. */
  registered: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringRecord = (v: unknown): v is Record<string, string> =>
  isObject(v) && Object.values(v).every((x) => typeof x === 'string');

function sameMetadata(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/**
 * A copy of `node` with its own metadata object: what a registry stores or hands out must not change when
 * the caller mutates the record it registered or received.
 */
export function copyNode(node: NodeRecord): NodeRecord {
  return { id: node.id, address: node.address, metadata: { ...node.metadata } };
}

/**
 * A copy of a service version's description, nodes left out (a whole ServiceRecord is accepted): a registry
 * stores the description once per version or beside each node, and gives out copies of it.
 */
export function describeService(service: ServiceDescription): ServiceDescription {
  return {
    name: service.name,
    version: service.version,
    metadata: { ...service.metadata },
    endpoints: service.endpoints.map((e) => ({ name: e.name, metadata: { ...e.metadata } })),
  };
}

/** A ServiceRecord made of copies of `description` and `nodes`: what getService, listServices and events return. */
export function toServiceRecord(description: ServiceDescription, nodes: Iterable<NodeRecord>): ServiceRecord {
  return { ...describeService(description), nodes: Array.from(nodes, copyNode) };
}

/**
 * A stored node entry read back, or undefined for anything half-written, foreign or garbled (the caller
 * decodes the bytes, e.g. with JSON.parse). Only the known fields are kept, copied; metadata must map strings
 * to strings. A missing `registered` is 0.
 */
export function parseNodeEntry(value: unknown): NodeEntry | undefined {
  if (!isObject(value) || !isObject(value.service) || !isObject(value.node) || typeof value.expires !== 'number')
    return undefined;
  const { service: s, node: n } = value;
  if (typeof s.name !== 'string' || typeof s.version !== 'string' || !isStringRecord(s.metadata)) return undefined;
  if (
    !Array.isArray(s.endpoints) ||
    !s.endpoints.every((e) => isObject(e) && typeof e.name === 'string' && isStringRecord(e.metadata))
  )
    return undefined;
  if (typeof n.id !== 'string' || typeof n.address !== 'string' || !isStringRecord(n.metadata)) return undefined;
  return {
    service: describeService({ name: s.name, version: s.version, metadata: s.metadata, endpoints: s.endpoints }),
    node: copyNode({ id: n.id, address: n.address, metadata: n.metadata }),
    expires: value.expires,
    registered: typeof value.registered === 'number' ? value.registered : 0,
  };
}

/** Whether a stored entry has expired at `now` (epoch ms); `expires: 0` never does. Readers skip and remove expired entries. */
export function isExpiredEntry(entry: Pick<NodeEntry, 'expires'>, now: number): boolean {
  return entry.expires !== 0 && entry.expires <= now;
}

const byNodeId = (a: { node: NodeRecord }, b: { node: NodeRecord }) =>
  a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0;

/**
 * Per-node entries as the Registry contract answers: one ServiceRecord per name+version (sorted by name, then
 * version), its nodes sorted by id, described by its highest-ranked entry. Two entries for one node keep the
 * higher-ranked (the first on a tie). `rank` orders registrations: a timestamp, a KV revision.
 */
export function mergeNodeEntries<E extends Pick<NodeEntry, 'service' | 'node'>>(
  entries: Iterable<E>,
  rank: (entry: E) => number,
): ServiceRecord[] {
  const groups = new Map<string, Map<string, E>>();
  for (const entry of entries) {
    const key = JSON.stringify([entry.service.name, entry.service.version]);
    let nodes = groups.get(key);
    if (!nodes) groups.set(key, (nodes = new Map()));
    const other = nodes.get(entry.node.id);
    if (!other || rank(other) < rank(entry)) nodes.set(entry.node.id, entry);
  }
  return [...groups.keys()].sort().map((key) => {
    const group = [...groups.get(key)!.values()].sort(byNodeId);
    const newest = group.reduce((a, b) => (rank(b) > rank(a) ? b : a));
    return toServiceRecord(
      newest.service,
      group.map((e) => e.node),
    );
  });
}

/**
 * Whether registering `b` over `a` (same node id) changes nothing a caller sees: same address, same metadata
 * (in any key order). A refresh that changes nothing is no watch event.
 */
export function sameNode(a: NodeRecord, b: NodeRecord): boolean {
  return a.address === b.address && sameMetadata(a.metadata, b.metadata);
}

/**
 * Whether two descriptions of one name+version say the same: metadata (in any key order) and endpoints (in
 * order, with their metadata). A re-registration with a changed description is an update event.
 */
export function sameDescription(a: ServiceDescription, b: ServiceDescription): boolean {
  return (
    sameMetadata(a.metadata, b.metadata) &&
    a.endpoints.length === b.endpoints.length &&
    a.endpoints.every(
      (e, i) => e.name === b.endpoints[i]?.name && sameMetadata(e.metadata, b.endpoints[i]?.metadata ?? {}),
    )
  );
}
