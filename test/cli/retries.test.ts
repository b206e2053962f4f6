/**
 * Retries that never run a handler twice, against real servers: a real `micro-fn serve`, real `micro-fn run`
 * instances, raw node:http servers that misbehave on purpose. Every case counts how often the handler ran (the
 * counter fixture appends a line per run; a raw server counts the requests it read).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, isMicroError, type MicroError, type NodeRecord } from '../../runtime/index.js';
import { createHttpTransport } from '../../runtime/plugins/http/index.js';
import { createFileRegistry, type FileRegistry } from '../../runtime/plugins/local/index.js';
import { cli, lastJson, start, tempHome, type Running } from './helpers.js';
import { eventually, rejects, withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let registry: FileRegistry;
const transport = createHttpTransport();
const running: Running[] = [];
const servers: Server[] = [];
const dirs: string[] = [];

/** A file the counter fixture appends to, in a folder any function user may write. */
function countFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-retries-'));
  chmodSync(dir, 0o777);
  dirs.push(dir);
  return join(dir, 'runs');
}

/** The runs a count file holds, as `<pid> <invocation id>` lines. */
const runs = (file: string): string[] =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

/** A raw HTTP server whose every request is counted and handed to `handle`. */
async function raw(
  handle: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; hits(): number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => handle(req, res));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

/** A client of the registry serve uses that tries the nodes in `order` first (by id). */
function clientTrying(order: string[]): Client {
  return new Client({
    registry,
    transports: [transport],
    backoff: () => 5,
    selector: (_s, nodes) => order.map((id) => nodes.find((n) => n.id === id)).find(Boolean) ?? nodes[0]!,
  });
}

/** Registers `nodes` as instances of `name`, as a killed or foreign process would have left them. */
const register = (name: string, nodes: NodeRecord[]) =>
  registry.register({ name, version: 'latest', metadata: {}, endpoints: [], nodes }, { ttl: 60 });

// ---
const retries = suite('Client retries (real servers)');

retries.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  registry = createFileRegistry({ home: scratch.home });
  serve = start(['serve', '--address', '127.0.0.1:0'], env);
  await serve.waitFor(/listening on/);
});

retries.after.each(() => {
  for (const r of running.splice(0)) r.kill();
});

retries.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  for (const s of servers) (s.closeAllConnections(), s.close());
  await transport.close();
  await registry.close?.();
  scratch.cleanup();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

retries('a handler that times out under micro-fn call runs once: 1 of 1 runs, 408', async () => {
  await ok(['deploy', 'test/fixtures/counter', '--timeout', '1s']);
  const file = countFile();
  const r = await cli(['call', 'counter', 'Counter.Run', JSON.stringify({ file, ms: 5000 }), '--retries', '3'], env, {
    timeout: 30_000,
  });
  assert.is(r.code, 1, r.stderr);
  assert.is((lastJson(r.stderr) as { code: number }).code, 408);
  // Every attempt of the call had its answer before `call` exited: a retry would be a second line by now.
  assert.is(runs(file).length, 1, `runs: ${runs(file).join(', ')}`);
});

retries('refuses --retries that is not a whole number from 0 to 100, in one line: 3 of 3', async () => {
  for (const value of ['abc', '1.5', '1000']) {
    const r = await cli(['call', 'counter', 'Counter.Run', '{}', '--retries', value], env);
    assert.is(r.code, 1);
    assert.is(r.stderr.trim(), `micro-fn: --retries takes a whole number from 0 to 100; got "${value}"`);
  }
});

retries('a handler that fails with 500 runs once: 1 of 1 runs', async () => {
  await ok(['deploy', 'test/fixtures/counter', '--timeout', '10s']);
  const file = countFile();
  const r = await cli(['call', 'counter', 'Counter.Run', JSON.stringify({ file, fail: true }), '--retries', '3'], env);
  assert.is(r.code, 1, r.stderr);
  assert.is((lastJson(r.stderr) as { code: number }).code, 500);
  assert.is(runs(file).length, 1);
});

retries('sends a call again after a 429 from a queue that did not take it: 2 calls, 2 runs', async () => {
  await ok(['deploy', 'test/fixtures/counter', '--concurrency', '1', '--queue', '0', '--timeout', '10s']);
  const file = countFile();
  const client = new Client({ registry, transports: [transport], backoff: () => 100 });
  const first = client.call('counter', 'Counter.Run', { file, ms: 600 }, { timeout: 10_000 });
  await eventually(() => runs(file).length === 1, 10_000, 'the one slot is taken');
  const second = client.call('counter', 'Counter.Run', { file }, { timeout: 10_000, retries: 20 });
  await withTimeout(Promise.all([first, second]), 15_000, 'both calls');
  assert.is(runs(file).length, 2, 'each call ran once');
});

retries(
  'sends a call again to another instance after a one-shot run instance refused it: 2 calls, 1 run each',
  async () => {
    const file = countFile();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = start(['run', 'test/fixtures/counter'], env);
      running.push(r);
      await r.waitFor(/listening on/);
    }
    const instances = async () =>
      (await registry.getService('counter')).flatMap((s) => s.nodes).filter((n) => !n.metadata.gateway);
    await eventually(async () => (await instances()).length === 2, 10_000, 'two run instances registered');
    ids.push(...(await instances()).map((n) => n.id));
    const client = clientTrying(ids);
    const first = client.call<{ pid: number }>('counter', 'Counter.Run', { file, ms: 500 }, { timeout: 10_000 });
    await eventually(() => runs(file).length === 1, 10_000, 'instance 1 has taken its one shot');
    const second = await withTimeout(
      client.call<{ pid: number }>('counter', 'Counter.Run', { file }, { timeout: 10_000 }),
    );
    const { pid } = await withTimeout(first);
    assert.is.not(second.pid, pid, 'the second call was served by the other instance');
    const pids = runs(file).map((line) => Number(line.split(' ')[0]));
    assert.equal(pids.sort(), [pid, second.pid].sort(), 'one run on each instance');
  },
);

retries(
  'goes past a node whose connection is refused at once, and skips it later: 3 calls, 3 runs, 1 refusal',
  async () => {
    await ok(['deploy', 'test/fixtures/counter', '--timeout', '10s']);
    const closed = await raw(() => {});
    await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
    await register('counter', [{ id: 'refusing', address: closed.url, metadata: {} }]);
    const attempts: string[] = [];
    const counting = {
      schemes: transport.schemes,
      call: (
        node: NodeRecord,
        ...rest: Parameters<typeof transport.call> extends [unknown, ...infer R] ? R : never
      ) => {
        attempts.push(node.id);
        return transport.call(node, ...rest);
      },
    };
    const file = countFile();
    const client = new Client({
      registry,
      transports: [counting],
      selector: (_s, nodes) => nodes.find((n) => n.id === 'refusing') ?? nodes[0]!,
    });
    // No retry allowed: going past a node that received nothing costs none.
    for (let i = 0; i < 3; i++)
      await withTimeout(client.call('counter', 'Counter.Run', { file }, { timeout: 10_000, retries: 0 }));
    assert.is(runs(file).length, 3);
    assert.is(attempts.filter((id) => id === 'refusing').length, 1, `attempts: ${attempts.join(', ')}`);
    await registry.deregister({
      name: 'counter',
      version: 'latest',
      metadata: {},
      endpoints: [],
      nodes: [{ id: 'refusing', address: closed.url, metadata: {} }],
    });
  },
);

// ---
const never = suite('Client never sends again what may have reached a handler (raw servers)');

never.after(() => {
  for (const s of servers.splice(0)) (s.closeAllConnections(), s.close());
});

/** Calls `url` as a node with 3 retries; the raw server's request count afterwards. */
async function callRaw(server: { url: string; hits(): number }): Promise<{ error: MicroError; hits: number }> {
  const client = new Client({ transports: [transport], backoff: () => 5 });
  const error = await rejects(() =>
    withTimeout(client.call('svc', 'S.M', {}, { address: server.url, retries: 3, timeout: 5000 })),
  );
  assert.ok(isMicroError(error), String(error));
  return { error, hits: server.hits() };
}

const answer = (status: number, id: string) => (_req: IncomingMessage, res: ServerResponse) => {
  const body = JSON.stringify({ id, code: status, detail: 'from the server', status: '' });
  res.writeHead(status, { 'content-type': 'application/json' }).end(body);
};

never('a connection reset after the request was read: 1 request of 4 allowed', async () => {
  const server = await raw((req) => req.socket.resetAndDestroy());
  const { error, hits } = await callRaw(server);
  assert.is(hits, 1, error.detail);
  assert.not.ok(error.retryable);
});

never('a connection closed after the request was read: 1 request of 4 allowed', async () => {
  const server = await raw((req) => req.socket.destroy());
  const { hits } = await callRaw(server);
  assert.is(hits, 1);
});

never('a 408, 500, 502, 503 and 504 without the not-started mark: 1 request each of 4 allowed', async () => {
  for (const status of [408, 500, 502, 503, 504]) {
    const { error, hits } = await callRaw(await raw(answer(status, 'proxy')));
    assert.is(hits, 1, `status ${status}: ${error.detail}`);
    assert.is(error.code, status);
  }
});

never('only a 503 or 429 marked micro-fn.not-started is sent again: 4 requests of 4 allowed each', async () => {
  for (const status of [503, 429]) {
    const { error, hits } = await callRaw(await raw(answer(status, 'micro-fn.not-started')));
    assert.is(hits, 4, `status ${status}: ${error.detail}`);
  }
});

retries.run();
never.run();
