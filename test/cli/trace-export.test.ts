/**
 * serve exports its functions' spans (serve/observe/span-sink.ts): each one-shot process hands its spans over its
 * pipe right before it exits, and serve sends them in batches. Every span arrives, once; a collector that hangs or is
 * down costs dropped spans, counted and said, never an invocation.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually, freePort, withTimeout } from '../helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from '../otlp-receiver.js';

/** A serve with helloworld deployed, exporting to `endpoint` with `extra` settings. */
async function serveWith(endpoint: string, extra: Record<string, string> = {}) {
  const scratch = tempHome();
  const env = { MICRO_FN_HOME: scratch.home, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, ...extra };
  const serve = start(['serve', '--address', '127.0.0.1:0', '--pool', '2'], env);
  const gateway = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
  const deployed = await cli(['deploy', 'examples/helloworld'], env, { timeout: 30000 });
  assert.is(deployed.code, 0, deployed.stderr);
  return { scratch, serve, gateway };
}

async function stopServe(serve: Running | undefined): Promise<void> {
  serve?.child.kill('SIGTERM');
  await serve?.exited(15000).catch(() => serve.kill());
}

/** `n` calls of helloworld, `at` a time, each in a trace of its own: the trace ids, once every call answered 200. */
async function calls(gateway: string, n: number, at = 4): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${(i + 1).toString(16).padStart(8, '0')}${'c'.repeat(24)}`);
  for (let i = 0; i < n; i += at)
    await Promise.all(
      ids.slice(i, i + at).map(async (traceId) => {
        const res = await withTimeout(
          fetch(`${gateway}/helloworld/Greeter.Hello`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
            body: '{"name":"Ada"}',
          }),
          20000,
          'a call',
        );
        assert.is(res.status, 200, await res.text());
        await res.arrayBuffer().catch(() => {});
      }),
    );
  return ids;
}

// ---
const arrive = suite('spans a function process hands to serve');
let receiver: OtlpReceiver;
let one: Awaited<ReturnType<typeof serveWith>> | undefined;

arrive.before(async () => {
  receiver = await startOtlpReceiver();
  one = await serveWith(receiver.endpoint);
});

arrive.after(async () => {
  await stopServe(one?.serve);
  await receiver?.close();
  one?.scratch.cleanup();
});

arrive('20 calls, each in a process that exits right after it replied: 20 server spans, one each', async () => {
  const ids = await calls(one!.gateway, 20);
  const ofCalls = () => receiver.spans.filter((s) => ids.includes(s.traceId));
  await eventually(() => ofCalls().length >= 20, 15000, `20 spans (received ${ofCalls().length})`, 50);
  // serve's batches are 200 ms apart: one more turn would bring any duplicate.
  await new Promise((r) => setTimeout(r, 500));
  assert.is(ofCalls().length, 20, '20 spans for 20 calls');
  assert.equal(new Set(ofCalls().map((s) => s.traceId)).size, 20, 'one span in each of the 20 traces');
  for (const span of ofCalls()) {
    assert.is(span.name, 'Greeter.Hello');
    assert.is(span.parentSpanId, '00f067aa0ba902b7');
    assert.is(span.resource['service.name'], 'helloworld', "the function's resource, as the process named it");
    assert.is(span.attributes['faas.name'], 'helloworld');
  }
  assert.equal(receiver.rejected, []);
});

arrive.run();

// ---
const collectors = suite('a collector that hangs or is down');

/** Takes every request and never answers it. */
async function hangingCollector(): Promise<{ endpoint: string; pending: number; close(): Promise<void> }> {
  const held: ServerResponse[] = [];
  const server: Server = createServer((_req: IncomingMessage, res: ServerResponse) => void held.push(res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get pending() {
      return held.filter((r) => !r.writableEnded && !r.destroyed).length;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

collectors(
  'a collector that never answers: 12 calls all answered while an export hangs; at stop, 0 of 12 spans exported, 12 dropped',
  async () => {
    const collector = await hangingCollector();
    // A queue of 4: past it, the oldest span waiting is dropped for each new one.
    const s = await serveWith(collector.endpoint, { OTEL_BSP_MAX_QUEUE_SIZE: '4', OTEL_BSP_SCHEDULE_DELAY: '50' });
    try {
      await calls(s.gateway, 12, 1);
      await eventually(() => collector.pending >= 1, 10000, 'an export held open by the collector', 50);
      assert.ok(collector.pending >= 1, 'the calls were answered while an export hung');
      s.serve.child.kill('SIGTERM');
      assert.is(await s.serve.exited(15000), 0, s.serve.stderr());
      assert.match(s.serve.stderr(), /traces: 0 spans exported, 12 dropped/, s.serve.stderr());
    } finally {
      await stopServe(s.serve);
      await collector.close();
      s.scratch.cleanup();
    }
  },
);

collectors('a collector that is down: 6 calls all answered; serve says spans were dropped, 6 of 6', async () => {
  const port = await freePort(); // nothing listens there
  const s = await serveWith(`http://127.0.0.1:${port}`, { OTEL_BSP_SCHEDULE_DELAY: '50' });
  try {
    await calls(s.gateway, 6, 1);
    await s.serve.waitFor(/traces: \d+ spans dropped: the OTLP collector at http:\/\/127\.0\.0\.1:\d+\/v1\/traces/);
    s.serve.child.kill('SIGTERM');
    assert.is(await s.serve.exited(15000), 0, s.serve.stderr());
    assert.match(s.serve.stderr(), /traces: 0 spans exported, 6 dropped/);
  } finally {
    await stopServe(s.serve);
    s.scratch.cleanup();
  }
});

collectors.run();
