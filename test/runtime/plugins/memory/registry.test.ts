import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { RegistryEvent } from '../../../../runtime/core/registry.js';
import { isMicroError } from '../../../../runtime/core/errors.js';
import { MemoryRegistry, createMemoryRegistry } from '../../../../runtime/plugins/memory/registry.js';
import { registryContract, serviceRecord } from '../../../contracts/registry.js';
import { rejects, withTimeout } from '../../../helpers.js';

registryContract('MemoryRegistry contract', async () => {
  const registry = createMemoryRegistry();
  return { registry, cleanup: () => registry.close() };
});

// ---

const MemoryRegistrySuite = suite<{ registry: MemoryRegistry }>('MemoryRegistry', { registry: new MemoryRegistry() });

MemoryRegistrySuite.before.each((ctx) => {
  ctx.registry = new MemoryRegistry();
});
MemoryRegistrySuite.after.each((ctx) => ctx.registry.close());

MemoryRegistrySuite('rejects a negative or non-finite ttl with a 400 that says what to pass', async ({ registry }) => {
  for (const ttl of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    const err = await rejects(() => registry.register(serviceRecord('greeter', '1.0.0', ['a']), { ttl }));
    assert.ok(isMicroError(err) && err.code === 400 && /ttl must be/.test(err.detail), `ttl ${ttl}`);
  }
  assert.equal(await registry.listServices(), []);
});

MemoryRegistrySuite('registers nothing for a record without nodes', async ({ registry }) => {
  await registry.register(serviceRecord('greeter', '1.0.0', []));
  assert.equal(await registry.getService('greeter'), []);
});

MemoryRegistrySuite('sends an update only when a refresh changes something', async ({ registry }) => {
  const controller = new AbortController();
  const events = registry.watch({ signal: controller.signal })[Symbol.asyncIterator]();
  await registry.register(serviceRecord('greeter', '1.0.0', ['a']), { ttl: 30 });
  await registry.register(serviceRecord('greeter', '1.0.0', ['a']), { ttl: 30 });
  await registry.register(serviceRecord('greeter', '1.0.0', ['a'], { zone: 'eu' }), { ttl: 30 });
  try {
    const created = (await withTimeout(events.next(), 1000, 'create')).value as RegistryEvent;
    const updated = (await withTimeout(events.next(), 1000, 'update')).value as RegistryEvent;
    // Had the unchanged refresh sent an update, this one would carry the node without the zone.
    assert.equal(
      [created.type, updated.type, updated.service.nodes[0]?.metadata],
      ['create', 'update', { zone: 'eu' }],
    );
  } finally {
    controller.abort();
  }
});

MemoryRegistrySuite(
  'rejects register after close with a 503 and ends a watch opened after close',
  async ({ registry }) => {
    await registry.close();
    const err = await rejects(() => registry.register(serviceRecord('greeter', '1.0.0', ['a'])));
    assert.ok(isMicroError(err) && err.code === 503);
    const watch = registry.watch()[Symbol.asyncIterator]();
    assert.ok((await withTimeout(watch.next(), 1000, 'the watch ending')).done);
  },
);

MemoryRegistrySuite('keeps two registries in one process apart', async ({ registry }) => {
  const other = createMemoryRegistry();
  try {
    await registry.register(serviceRecord('greeter', '1.0.0', ['a']));
    assert.equal(await other.getService('greeter'), []);
  } finally {
    await other.close();
  }
});

MemoryRegistrySuite('gives every watcher its own copy of an event', async ({ registry }) => {
  const controller = new AbortController();
  const first = registry.watch({ signal: controller.signal })[Symbol.asyncIterator]();
  const second = registry.watch({ signal: controller.signal })[Symbol.asyncIterator]();
  try {
    await registry.register(serviceRecord('greeter', '1.0.0', ['a']));
    const one = (await withTimeout(first.next(), 1000, 'first watcher')).value as RegistryEvent;
    one.service.nodes.length = 0;
    const two = (await withTimeout(second.next(), 1000, 'second watcher')).value as RegistryEvent;
    assert.equal(
      two.service.nodes.map((n) => n.id),
      ['a'],
    );
  } finally {
    controller.abort();
  }
});

MemoryRegistrySuite('does not keep the process alive while a node waits to expire', async () => {
  const module = fileURLToPath(new URL('../../../../runtime/plugins/memory/registry.ts', import.meta.url));
  const script = `const { createMemoryRegistry } = await import(${JSON.stringify(module)});
    await createMemoryRegistry().register({ name: 's', version: '1', metadata: {}, endpoints: [], nodes: [{ id: 'n', address: 'http://x', metadata: {} }] }, { ttl: 3600 });`;
  const started = Date.now();
  await withTimeout(
    new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { timeout: 20_000 },
        (err) => (err ? reject(err) : resolve()),
      ),
    ),
    25_000,
    'the child process exiting',
  );
  assert.ok(Date.now() - started < 20_000);
});

MemoryRegistrySuite.run();

// ---

const createMemoryRegistrySuite = suite('createMemoryRegistry');

createMemoryRegistrySuite('returns a MemoryRegistry seeded with the given services, kept without a ttl', async () => {
  const registry = createMemoryRegistry({ services: [serviceRecord('greeter', '1.0.0', ['a'])] });
  try {
    assert.instance(registry, MemoryRegistry);
    assert.equal(await registry.getService('greeter'), [serviceRecord('greeter', '1.0.0', ['a'])]);
  } finally {
    await registry.close();
  }
});

createMemoryRegistrySuite('refuses a seed service without a name', () => {
  assert.throws(() => createMemoryRegistry({ services: [serviceRecord('', '1.0.0', ['a'])] }), /non-empty name/);
});

createMemoryRegistrySuite.run();
