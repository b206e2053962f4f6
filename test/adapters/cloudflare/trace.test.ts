/**
 * Spans on Workers: a Worker built for an OTLP endpoint sends its invocation's span with fetch (runtime/plugins/otel
 * fetch-exporter.ts), inside the event, to a real OTLP receiver; one built without carries no exporter.
 */
import { readFileSync } from 'node:fs';
import type { Miniflare } from 'miniflare';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, withTimeout } from '../../helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from '../../otlp-receiver.js';
import { buildWorker, startWorker, tempDir } from './worker.js';
import { fileURLToPath } from 'node:url';

const helloworld = fileURLToPath(new URL('../../../examples/helloworld/index.ts', import.meta.url));
const BASE = 'http://worker.test';

// ---
const spans = suite('createWorker: spans over OTLP with fetch');
let receiver: OtlpReceiver;
let mf: Miniflare | undefined;
let folders: { remove(): void }[] = [];

spans.before(async () => {
  receiver = await startOtlpReceiver();
});

spans.after(async () => {
  await mf?.dispose();
  await receiver?.close();
  for (const f of folders) f.remove();
});

spans(
  'one call with a traceparent: one server span in its trace, child of the caller, with its attributes',
  async () => {
    const folder = tempDir();
    folders.push(folder);
    const vars = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: 'hello-edge' };
    const built = await buildWorker(helloworld, folder.dir, vars);
    mf = startWorker(built, folder.dir, vars);
    const traceId = 'cf0f92f3577b34da6a3ce929d0e0e473';
    const res = await withTimeout(
      mf.dispatchFetch(`${BASE}/helloworld/Greeter.Hello`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
        body: '{"name":"Ada"}',
      }),
      20000,
      'the call',
    );
    assert.is(res.status, 200);
    assert.equal(await res.json(), { message: 'Hello Ada' });
    await eventually(() => receiver.spans.length >= 1, 10000, 'the span', 50);
    await new Promise((r) => setTimeout(r, 200)); // a second span would be here by now
    assert.is(receiver.spans.length, 1, 'one call, one span');
    const [span] = receiver.spans;
    assert.is(span!.traceId, traceId);
    assert.is(span!.parentSpanId, '00f067aa0ba902b7');
    assert.is(span!.name, 'Greeter.Hello');
    assert.is(span!.kind, 2, 'SERVER');
    assert.is(span!.resource['service.name'], 'hello-edge');
    assert.is(span!.attributes['faas.name'], 'helloworld');
    assert.is(span!.attributes['micro.status'], 200);
    assert.equal(receiver.rejected, []);
  },
);

spans(
  'a Worker built without an endpoint carries no exporter; one built with one carries the fetch exporter',
  async () => {
    const [plain, traced] = [tempDir(), tempDir()];
    folders.push(plain, traced);
    const without = await buildWorker(helloworld, plain.dir);
    const withOne = await buildWorker(helloworld, traced.dir, {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example.com',
    });
    assert.not.ok(readFileSync(without.file, 'utf8').includes('resourceSpans'), 'no exporter without an endpoint');
    assert.ok(readFileSync(withOne.file, 'utf8').includes('resourceSpans'), 'the exporter with one');
    // Setting an exporter up reads the runtime settings (readConfig, tracingOf): only a bundle with one carries that.
    const settings = 'MICRO_REGISTRY_ADDRESS';
    assert.not.ok(readFileSync(without.file, 'utf8').includes(settings), 'no exporter set-up without an endpoint');
    assert.ok(readFileSync(withOne.file, 'utf8').includes(settings), 'the set-up with one');
    assert.ok(without.size <= 20 * 1024, `helloworld without an endpoint is ${without.size} bytes`);
  },
);

spans.run();
