import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isMicroError } from '../../../../runtime/core/errors.js';
import type { RegistryEvent } from '../../../../runtime/core/registry.js';
import { FileRegistry, createFileRegistry, microFnHome } from '../../../../runtime/plugins/local/index.js';
import { registryContract, serviceRecord } from '../../../contracts/registry.js';
import { eventually, rejects, withTimeout } from '../../../helpers.js';

const tempHome = () => mkdtempSync(join(tmpdir(), 'micro-fn-registry-'));
const removeHome = (home: string) => rmSync(home, { recursive: true, force: true, maxRetries: 5 });
const writer = fileURLToPath(new URL('./writer.ts', import.meta.url));
const ids = (services: { nodes: { id: string }[] }[]) => services.flatMap((s) => s.nodes.map((n) => n.id)).sort();

/** Every file under `dir`, as paths relative to it. */
function walk(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(dir, join(prefix, e.name)) : [join(prefix, e.name)],
  );
}

registryContract('FileRegistry contract', async () => {
  const home = tempHome();
  const registry = createFileRegistry({ home, pollInterval: 20 });
  return { registry, cleanup: async () => (await registry.close(), removeHome(home)) };
});

// ---

interface Context {
  home: string;
  registries: FileRegistry[];
  children: ChildProcess[];
  controller: AbortController;
  open(): FileRegistry;
}

const FileRegistrySuite = suite<Context>('FileRegistry', {
  home: '',
  registries: [],
  children: [],
  controller: new AbortController(),
  open: () => undefined as never,
});

FileRegistrySuite.before.each((ctx) => {
  ctx.home = tempHome();
  ctx.registries = [];
  ctx.children = [];
  ctx.controller = new AbortController();
  ctx.open = () => {
    const registry = createFileRegistry({ home: ctx.home, pollInterval: 20 });
    ctx.registries.push(registry);
    return registry;
  };
});
FileRegistrySuite.after.each(async (ctx) => {
  ctx.controller.abort();
  for (const child of ctx.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(ctx.registries.map((r) => r.close()));
  removeHome(ctx.home);
});

/** Starts writer.ts in its own process; resolves with its exit code. */
function startWriter(ctx: Context, worker: number, mode: 'churn' | 'rewrite'): Promise<number | null> {
  const child = spawn(process.execPath, ['--import', 'tsx', writer, ctx.home, String(worker), mode], {
    stdio: ['pipe', 'inherit', 'inherit'],
  });
  ctx.children.push(child);
  return new Promise((resolve, reject) => child.once('error', reject).once('exit', (code) => resolve(code)));
}

FileRegistrySuite(
  'keeps exactly the right nodes when several processes write the same service at once',
  async (ctx) => {
    const codes = await withTimeout(
      Promise.all([0, 1, 2, 3].map((w) => startWriter(ctx, w, 'churn'))),
      60_000,
      'the writer processes',
    );
    assert.equal(codes, [0, 0, 0, 0]);
    const expected = [0, 1, 2, 3].flatMap((w) => Array.from({ length: 25 }, (_, i) => `${w}-${i * 2}`)).sort();
    assert.equal(ids(await ctx.open().getService('greeter')), expected);
    const files = walk(join(ctx.home, 'registry'));
    assert.is(files.length, 100);
    for (const file of files) {
      assert.ok(file.endsWith('.json') && !file.split(/[\\/]/).pop()!.startsWith('.'), `left over: ${file}`);
      JSON.parse(readFileSync(join(ctx.home, 'registry', file), 'utf8'));
    }
  },
);

FileRegistrySuite('never shows a reader a half-written node while another process rewrites it', async (ctx) => {
  const registry = ctx.open();
  void startWriter(ctx, 0, 'rewrite');
  await eventually(async () => (await registry.getService('hot')).length === 1, 20_000, 'the first write');
  const file = join(registry.directory, 'hot', '1.0.0', 'hot.json');
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const raw = JSON.parse(await readFile(file, 'utf8')) as { node: { metadata: Record<string, string> } };
    assert.is(raw.node.metadata.pad?.length, 256 * 1024);
    const [service, ...rest] = await registry.getService('hot');
    assert.is(rest.length, 0);
    assert.equal(
      service?.nodes.map((n) => [n.id, n.metadata.pad?.length]),
      [['hot', 256 * 1024]],
      `read ${i}`,
    );
    seen.add(raw.node.metadata.i!).add(service!.nodes[0]!.metadata.i!);
  }
  assert.ok(seen.size > 1, 'the writer rewrote the node while we read');
});

FileRegistrySuite('skips corrupt, empty, foreign and temp files instead of failing', async (ctx) => {
  const registry = ctx.open();
  await registry.register(serviceRecord('greeter', '1.0.0', ['good']));
  const dir = join(registry.directory, 'greeter', '1.0.0');
  writeFileSync(join(dir, 'bad.json'), '{"service": {"name": "greeter", "vers');
  writeFileSync(join(dir, 'empty.json'), '');
  writeFileSync(join(dir, 'array.json'), '[1, 2]');
  writeFileSync(
    join(dir, 'shape.json'),
    JSON.stringify({ service: { name: 'greeter', version: '1.0.0' }, node: { id: 7 }, expires: 0 }),
  );
  writeFileSync(join(dir, '.123-1.tmp'), '{"half');
  mkdirSync(join(dir, 'folder.json'));
  mkdirSync(join(registry.directory, 'junk', 'x'), { recursive: true });
  writeFileSync(join(registry.directory, 'junk', 'x', 'n.json'), 'not json');
  assert.equal(ids(await registry.getService('greeter')), ['good']);
  assert.equal(ids(await registry.listServices()), ['good']);
});

FileRegistrySuite('keeps path-escaping and awkward names inside its folder', async (ctx) => {
  const registry = ctx.open();
  const names = ['../x', '..', '.', '.hidden', 'a/b', 'a\\b', 'CON', 'x'.repeat(300), 'ünï cødé'];
  // Version '..' everywhere, and the empty version once.
  const record = (name: string) => serviceRecord(name, name === '..' ? '' : '..', ['../../evil']);
  for (const name of names) await registry.register(record(name));
  assert.equal(readdirSync(ctx.home), ['registry']);
  for (const name of names)
    assert.equal(
      (await registry.getService(name)).map((s) => [s.name, ids([s])]),
      [[name, ['../../evil']]],
      name,
    );
  assert.is((await registry.listServices()).length, names.length);
  for (const file of walk(registry.directory)) {
    for (const part of file.split(/[\\/]/))
      assert.ok(part.length <= 210 && !part.startsWith('.') && !/^con$/i.test(part), `bad segment in ${file}`);
  }
  for (const name of names) await registry.deregister(record(name));
  assert.equal(readdirSync(registry.directory), []);
});

FileRegistrySuite(
  'shows a node expiring, and changes made elsewhere, to another instance on the same home',
  async (ctx) => {
    const [writerRegistry, reader] = [ctx.open(), ctx.open()];
    const events = reader.watch({ service: 'greeter', signal: ctx.controller.signal })[Symbol.asyncIterator]();
    const keepAlive = setInterval(() => {}, 1000); // the registry's timers are unref'd: keep Node up while waiting
    try {
      await writerRegistry.register(serviceRecord('greeter', '1.0.0', ['a']), { ttl: 0.1 });
      assert.equal(ids(await reader.getService('greeter')), ['a']);
      const created = (await withTimeout(events.next(), 3000, 'the create seen by the other instance'))
        .value as RegistryEvent;
      assert.equal([created.type, ids([created.service])], ['create', ['a']]);
      const expired = (await withTimeout(events.next(), 3000, 'the expiry seen by the other instance'))
        .value as RegistryEvent;
      assert.equal([expired.type, ids([expired.service])], ['delete', ['a']]);
      assert.equal(await reader.getService('greeter'), []);
      assert.equal(walk(reader.directory), [], 'the expired file is removed');
    } finally {
      clearInterval(keepAlive);
    }
  },
);

FileRegistrySuite('takes the endpoints and metadata of the most recently registered node', async (ctx) => {
  const registry = ctx.open();
  await registry.register(serviceRecord('greeter', '1.0.0', ['a']));
  await registry.register({ ...serviceRecord('greeter', '1.0.0', ['b']), metadata: { owner: 'new' }, endpoints: [] });
  const [service] = await registry.getService('greeter');
  assert.equal([service?.metadata, service?.endpoints, ids([service!])], [{ owner: 'new' }, [], ['a', 'b']]);
});

FileRegistrySuite('rejects a bad ttl with a 400 and register after close with a 503', async (ctx) => {
  const registry = ctx.open();
  for (const ttl of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    const err = await rejects(() => registry.register(serviceRecord('greeter', '1.0.0', ['a']), { ttl }));
    assert.ok(isMicroError(err) && err.code === 400 && /ttl must be/.test(err.detail), `ttl ${ttl}`);
  }
  await registry.close();
  const err = await rejects(() => registry.register(serviceRecord('greeter', '1.0.0', ['a'])));
  assert.ok(isMicroError(err) && err.code === 503);
  assert.ok((await withTimeout(registry.watch()[Symbol.asyncIterator]().next(), 1000, 'the watch ending')).done);
});

FileRegistrySuite('does not keep the process alive with a node waiting to expire and a watch open', async (ctx) => {
  const module = fileURLToPath(new URL('../../../../runtime/plugins/local/registry.ts', import.meta.url));
  const script = `const { createFileRegistry } = await import(${JSON.stringify(module)});
    const registry = createFileRegistry({ home: ${JSON.stringify(ctx.home)} });
    void registry.watch()[Symbol.asyncIterator]().next();
    await registry.register({ name: 's', version: '1', metadata: {}, endpoints: [], nodes: [{ id: 'n', address: 'http://x', metadata: {} }] }, { ttl: 3600 });`;
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
  assert.equal(ids(await ctx.open().getService('s')), ['n']);
});

FileRegistrySuite.run();

// ---

const createFileRegistrySuite = suite('createFileRegistry');

createFileRegistrySuite('keeps node files under <home>/registry, home defaulting to MICRO_FN_HOME', async () => {
  const home = tempHome();
  const saved = process.env.MICRO_FN_HOME;
  process.env.MICRO_FN_HOME = home;
  try {
    assert.is(createFileRegistry().directory, join(home, 'registry'));
    assert.is(createFileRegistry({ home: '/elsewhere' }).directory, join('/elsewhere', 'registry'));
  } finally {
    if (saved === undefined) delete process.env.MICRO_FN_HOME;
    else process.env.MICRO_FN_HOME = saved;
    removeHome(home);
  }
});

createFileRegistrySuite('refuses a poll interval that is not a positive number of milliseconds', () => {
  for (const pollInterval of [0, -1, Number.NaN])
    assert.throws(() => createFileRegistry({ home: tmpdir(), pollInterval }), /pollInterval must be/);
});

createFileRegistrySuite.run();

// ---

const microFnHomeSuite = suite('microFnHome');

microFnHomeSuite('is MICRO_FN_HOME made absolute, else ~/.micro-fn', () => {
  assert.is(microFnHome({ MICRO_FN_HOME: '/srv/micro' }), resolve('/srv/micro'));
  assert.is(microFnHome({ MICRO_FN_HOME: 'state' }), resolve('state'));
  assert.is(microFnHome({ MICRO_FN_HOME: ' ' }), join(homedir(), '.micro-fn'));
  assert.is(microFnHome({}), join(homedir(), '.micro-fn'));
});

microFnHomeSuite.run();
