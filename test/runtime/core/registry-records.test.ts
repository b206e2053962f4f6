import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeRecord } from '../../../runtime/core/registry.js';
import {
  copyNode,
  describeService,
  isExpiredEntry,
  mergeNodeEntries,
  parseNodeEntry,
  sameDescription,
  sameNode,
  toServiceRecord,
  type NodeEntry,
  type ServiceDescription,
} from '../../../runtime/core/registry-records.js';

const node = (id: string, metadata: Record<string, string> = {}): NodeRecord => ({
  id,
  address: `http://${id}`,
  metadata,
});
const description = (name: string, version: string, metadata: Record<string, string> = {}): ServiceDescription => ({
  name,
  version,
  metadata,
  endpoints: [{ name: 'Greeter.Hello', metadata: {} }],
});
const entry = (
  name: string,
  version: string,
  id: string,
  registered = 1,
  metadata: Record<string, string> = {},
): NodeEntry => ({
  service: description(name, version, metadata),
  node: node(id),
  expires: 0,
  registered,
});
/** Decoded input, which the tests spoil freely (`any`: any shape at all is the point). */
type Decoded = Record<string, any>;
/** A stored entry as a registry writes it, decoded but not yet validated. */
const stored = () => JSON.parse(JSON.stringify(entry('greeter', '1.0.0', 'a', 5, { zone: 'x' }))) as Decoded;

// ---
const copy = suite('copyNode');

copy('returns an equal node whose metadata is its own object', () => {
  const original = node('a', { zone: 'x' });
  const copied = copyNode(original);
  assert.equal(copied, original);
  copied.metadata.zone = 'y';
  assert.is(original.metadata.zone, 'x');
});

copy.run();

// ---
const describe = suite('describeService');

describe('leaves the nodes out and copies metadata and endpoints', () => {
  const record = { ...description('greeter', '1.0.0', { team: 'a' }), nodes: [node('a')] };
  const described = describeService(record);
  assert.equal(described, description('greeter', '1.0.0', { team: 'a' }));
  assert.not.ok('nodes' in described);
  described.metadata.team = 'b';
  described.endpoints[0]!.metadata.x = 'y';
  assert.equal(record.metadata, { team: 'a' });
  assert.equal(record.endpoints[0]!.metadata, {});
});

describe.run();

// ---
const record = suite('toServiceRecord');

record('puts copies of the nodes of any iterable beside a copy of the description', () => {
  const nodes = new Map([['a', node('a', { zone: 'x' })]]);
  const result = toServiceRecord(description('greeter', '1.0.0'), nodes.values());
  assert.equal(result, { ...description('greeter', '1.0.0'), nodes: [node('a', { zone: 'x' })] });
  result.nodes[0]!.metadata.zone = 'y';
  assert.is(nodes.get('a')!.metadata.zone, 'x');
});

record.run();

// ---
const parse = suite('parseNodeEntry');

parse('reads back an entry as a registry writes it', () => {
  assert.equal(parseNodeEntry(stored()), entry('greeter', '1.0.0', 'a', 5, { zone: 'x' }));
});

parse('keeps only the known fields and reads a missing registered as 0', () => {
  const value = stored();
  value.extra = true;
  value.service.extra = true;
  value.node.extra = true;
  value.service.endpoints[0].extra = true;
  delete value.registered;
  assert.equal(parseNodeEntry(value), entry('greeter', '1.0.0', 'a', 0, { zone: 'x' }));
});

parse('returns a copy: changing the decoded value afterwards changes nothing', () => {
  const value = stored();
  const parsed = parseNodeEntry(value)!;
  value.service.metadata.zone = 'changed';
  value.node.metadata.changed = 'yes';
  assert.equal(parsed.service.metadata, { zone: 'x' });
  assert.equal(parsed.node.metadata, {});
});

parse('rejects metadata that maps to anything but strings, in the service, an endpoint or the node', () => {
  const cases: [string, (v: Decoded) => void][] = [
    ['service metadata with a number', (v) => (v.service.metadata.zone = 1)],
    ['endpoint metadata with null', (v) => (v.service.endpoints[0].metadata.x = null)],
    ['node metadata with an object', (v) => (v.node.metadata.x = {})],
    ['node metadata that is an array', (v) => (v.node.metadata = ['x'])],
    ['service metadata missing', (v) => delete v.service.metadata],
  ];
  for (const [what, spoil] of cases) {
    const value = stored();
    spoil(value);
    assert.is(parseNodeEntry(value), undefined, what);
  }
});

parse('rejects an entry with a missing or mistyped field', () => {
  const cases: [string, (v: Decoded) => void][] = [
    ['no expires', (v) => delete v.expires],
    ['expires as a string', (v) => (v.expires = '0')],
    ['no service', (v) => delete v.service],
    ['a numeric service name', (v) => (v.service.name = 1)],
    ['no version', (v) => delete v.service.version],
    ['endpoints not an array', (v) => (v.service.endpoints = {})],
    ['an endpoint without a name', (v) => delete v.service.endpoints[0].name],
    ['a node that is an array', (v) => (v.node = [])],
    ['a node without an address', (v) => delete v.node.address],
    ['a numeric node id', (v) => (v.node.id = 7)],
  ];
  for (const [what, spoil] of cases) {
    const value = stored();
    spoil(value);
    assert.is(parseNodeEntry(value), undefined, what);
  }
  for (const value of [null, undefined, 'text', 42, []]) assert.is(parseNodeEntry(value), undefined, String(value));
});

parse.run();

// ---
const expired = suite('isExpiredEntry');

expired('never expires an entry with expires 0, and expires one whose time has come', () => {
  assert.not.ok(isExpiredEntry({ expires: 0 }, Number.MAX_SAFE_INTEGER));
  assert.not.ok(isExpiredEntry({ expires: 1001 }, 1000));
  assert.ok(isExpiredEntry({ expires: 1000 }, 1000));
  assert.ok(isExpiredEntry({ expires: 999 }, 1000));
});

expired.run();

// ---
const merge = suite('mergeNodeEntries');

const byRegistered = (e: NodeEntry) => e.registered;
const shape = (records: { name: string; version: string; nodes: NodeRecord[] }[]) =>
  records.map((r) => [r.name, r.version, r.nodes.map((n) => n.id)]);

merge('makes one record per name and version, sorted, with its nodes sorted by id', () => {
  const records = mergeNodeEntries(
    [entry('b', '1', 'z'), entry('a', '2', 'y'), entry('b', '1', 'c'), entry('a', '1', 'x'), entry('b', '1', 'm')],
    byRegistered,
  );
  assert.equal(shape(records), [
    ['a', '1', ['x']],
    ['a', '2', ['y']],
    ['b', '1', ['c', 'm', 'z']],
  ]);
});

merge('keeps name and version apart even when their joined text would be the same', () => {
  const records = mergeNodeEntries([entry('a.b', 'c', 'n1'), entry('a', 'b.c', 'n2')], byRegistered);
  assert.equal(shape(records), [
    ['a', 'b.c', ['n2']],
    ['a.b', 'c', ['n1']],
  ]);
});

merge('describes a version by its highest-ranked entry, wherever that entry comes', () => {
  const entries = [
    entry('s', '1', 'a', 1, { v: 'old' }),
    entry('s', '1', 'b', 3, { v: 'new' }),
    entry('s', '1', 'c', 2, { v: 'mid' }),
  ];
  for (const order of [entries, [...entries].reverse()]) {
    const [record] = mergeNodeEntries(order, byRegistered);
    assert.equal(record!.metadata, { v: 'new' });
  }
});

merge('ranks by what the caller says, not by the registered field', () => {
  const revisions = new Map<NodeEntry, number>();
  const older = entry('s', '1', 'a', 100, { v: 'low revision' });
  const newer = entry('s', '1', 'b', 1, { v: 'high revision' });
  revisions.set(older, 1).set(newer, 2);
  const [record] = mergeNodeEntries([older, newer], (e) => revisions.get(e)!);
  assert.equal(record!.metadata, { v: 'high revision' });
});

merge('lists a node registered twice once, as its higher-ranked entry (the first on a tie)', () => {
  const first = { ...entry('s', '1', 'a', 1), node: { ...node('a'), address: 'http://first' } };
  const second = { ...entry('s', '1', 'a', 2), node: { ...node('a'), address: 'http://second' } };
  const tie = { ...entry('s', '1', 'a', 2), node: { ...node('a'), address: 'http://tie' } };
  assert.equal(mergeNodeEntries([first, second, tie], byRegistered)[0]!.nodes, [
    { ...node('a'), address: 'http://second' },
  ]);
  assert.equal(mergeNodeEntries([second, first], byRegistered)[0]!.nodes, [{ ...node('a'), address: 'http://second' }]);
});

merge('returns copies: changing a record leaves the entries as they were', () => {
  const source = entry('s', '1', 'a', 1, { v: 'x' });
  const [record] = mergeNodeEntries([source], byRegistered);
  record!.metadata.v = 'changed';
  record!.nodes[0]!.metadata.zone = 'changed';
  assert.equal(source.service.metadata, { v: 'x' });
  assert.equal(source.node.metadata, {});
});

merge('returns no record for no entries', () => {
  assert.equal(mergeNodeEntries([], byRegistered), []);
});

merge.run();

// ---
const nodes = suite('sameNode');

nodes('takes the same address and metadata in another key order as the same node', () => {
  assert.ok(
    sameNode(
      { id: 'a', address: 'http://a', metadata: { x: '1', y: '2' } },
      { id: 'a', address: 'http://a', metadata: { y: '2', x: '1' } },
    ),
  );
});

nodes('tells a changed address, a changed value, an added key or a renamed key', () => {
  const a: NodeRecord = { id: 'a', address: 'http://a', metadata: { x: '1' } };
  assert.not.ok(sameNode(a, { ...a, address: 'http://b' }));
  assert.not.ok(sameNode(a, { ...a, metadata: { x: '2' } }));
  assert.not.ok(sameNode(a, { ...a, metadata: { x: '1', y: '1' } }));
  assert.not.ok(sameNode({ ...a, metadata: { x: '1', y: '1' } }, a));
  assert.not.ok(sameNode(a, { ...a, metadata: { z: '1' } }));
});

nodes.run();

// ---
const descriptions = suite('sameDescription');

descriptions('takes the same metadata and endpoints as the same description', () => {
  const a = {
    ...description('s', '1', { x: '1', y: '2' }),
    endpoints: [{ name: 'A.B', metadata: { p: '1', q: '2' } }],
  };
  const b = {
    ...description('s', '1', { y: '2', x: '1' }),
    endpoints: [{ name: 'A.B', metadata: { q: '2', p: '1' } }],
  };
  assert.ok(sameDescription(a, b));
});

descriptions('tells changed service metadata, endpoint names, order, count or endpoint metadata', () => {
  const two: ServiceDescription['endpoints'] = [
    { name: 'A.B', metadata: {} },
    { name: 'A.C', metadata: { p: '1' } },
  ];
  const a: ServiceDescription = { name: 's', version: '1', metadata: { x: '1' }, endpoints: two };
  assert.not.ok(sameDescription(a, { ...a, metadata: { x: '2' } }));
  assert.not.ok(sameDescription(a, { ...a, endpoints: [two[0]!, { name: 'A.D', metadata: { p: '1' } }] }));
  assert.not.ok(sameDescription(a, { ...a, endpoints: [two[1]!, two[0]!] }));
  assert.not.ok(sameDescription(a, { ...a, endpoints: [two[0]!] }));
  assert.not.ok(sameDescription(a, { ...a, endpoints: [two[0]!, { name: 'A.C', metadata: { p: '2' } }] }));
});

descriptions.run();
