/**
 * Stale nodes cost nothing: `micro-fn run` instances killed with SIGKILL leave their registry entries behind (until
 * their TTL, 60 s here); a caller skips each at once and goes to the live node. Three killed `run` instances are the
 * stale nodes; the live one is a long-running service on a real HTTP listener (a node that serves every call, so
 * 100 calls take milliseconds each); the registry is the file registry every local process shares.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Client, createService, type NodeRecord, type Service, type Transport } from '../../runtime/index.js';
import { createHttpTransport } from '../../runtime/plugins/http/index.js';
import { createFileRegistry, type FileRegistry } from '../../runtime/plugins/local/index.js';
import { cli, start, tempHome } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let live: Service;
let registry: FileRegistry;
const transport = createHttpTransport();
/** Runs of the live node's handler, by the `file` its request names (a key here, no file). */
const ran = new Map<string, number>();
const runs = (file: string): number => ran.get(file) ?? 0;

/** Every node of counter, and the stale ones (all but the live service's). */
async function nodes(): Promise<{ all: NodeRecord[]; stale: NodeRecord[] }> {
  const all = (await registry.getService('counter')).flatMap((s) => s.nodes);
  return { all, stale: all.filter((n) => n.address !== live.address) };
}

// ---
const stale = suite('stale nodes');

stale.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home, MICRO_REGISTER_TTL: '60' };
  registry = createFileRegistry({ home: scratch.home });
  live = createService(
    {
      name: 'counter',
      handlers: {
        Counter: { Run: (req: { file: string }) => (ran.set(req.file, runs(req.file) + 1), { ok: true }) },
      },
    },
    { registry, transport, address: '127.0.0.1:0', ttl: 60 },
  );
  await live.start();
  for (let i = 0; i < 3; i++) {
    const instance = start(['run', 'test/fixtures/counter'], env);
    const [, address] = await instance.waitFor(/listening on (http:\/\/\S+)/);
    await eventually(async () => (await nodes()).all.some((n) => n.address === address), 10_000, 'registered');
    const killed = new Promise((resolve) => instance.child.once('exit', resolve));
    instance.child.kill('SIGKILL'); // no deregistration: its entry stays
    await withTimeout(killed, 10_000, 'the kill');
    // Kept as the killed process left it, for a minute, whatever TTL a one-shot instance registers with.
    for (const service of await registry.getService('counter')) {
      const left = service.nodes.filter((n) => n.address === address);
      if (left.length > 0) await registry.register({ ...service, nodes: left }, { ttl: 60 });
    }
  }
  const { all, stale: left } = await nodes();
  assert.equal([all.length, left.length], [4, 3], '3 stale nodes and 1 live one in the registry');
});

stale.after(async () => {
  await live.stop();
  await transport.close();
  await registry.close?.();
  scratch.cleanup();
});

stale('3 stale nodes and 1 live: 100 of 100 calls succeed, each stale node tried once', async () => {
  const attempts = new Map<string, number>();
  const counting: Transport = {
    schemes: transport.schemes,
    call: (node, request, options) => {
      attempts.set(node.id, (attempts.get(node.id) ?? 0) + 1);
      return transport.call(node, request, options);
    },
  };
  // A long-running caller with the defaults: one retry, random choice.
  const client = new Client({ registry, transports: [counting] });
  const file = 'client';
  const failures: string[] = [];
  for (let i = 0; i < 100; i++) {
    await withTimeout(client.call('counter', 'Counter.Run', { file }), 10_000, `call ${i}`).catch((err: Error) =>
      failures.push(err.message),
    );
  }
  assert.equal(failures, [], `${failures.length} of 100 failed`);
  assert.is(runs(file), 100, 'each call ran once');
  const { stale: dead } = await nodes();
  for (const node of dead)
    assert.ok((attempts.get(node.id) ?? 0) <= 1, `stale node tried ${attempts.get(node.id)} times`);
});

stale('3 stale nodes and 1 live: micro-fn call succeeds 5 of 5 times, each a new process', async () => {
  const file = 'cli';
  for (let i = 0; i < 5; i++) {
    const r = await cli(['call', 'counter', 'Counter.Run', JSON.stringify({ file })], env, { timeout: 30_000 });
    assert.is(r.code, 0, `call ${i}: ${r.stderr}`);
  }
  assert.is(runs(file), 5);
});

stale.run();
