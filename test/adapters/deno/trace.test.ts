/** Spans on Deno: a module built for an OTLP endpoint sends its invocation's span with fetch, under the real `deno serve`. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually } from '../../helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from '../../otlp-receiver.js';
import { buildFor, example, post, serveBuilt, tempDir, type DenoProcess } from './deno.js';

// ---
const spans = suite('createServe: spans over OTLP with fetch');
let receiver: OtlpReceiver;
let deno: DenoProcess | undefined;
let folder: { dir: string; remove(): void } | undefined;

spans.before(async () => {
  receiver = await startOtlpReceiver();
});

spans.after(async () => {
  await deno?.stop();
  await receiver?.close();
  folder?.remove();
});

spans('one call with a traceparent: one server span in its trace, child of the caller', async () => {
  folder = tempDir();
  const vars = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
  const built = await buildFor(example('helloworld'), folder.dir, vars);
  const host = new URL(receiver.endpoint).host;
  deno = await serveBuilt(built.file, vars, ['--allow-env=MICRO_*,OTEL_*', `--allow-net=${host}`]);
  const traceId = 'de0f92f3577b34da6a3ce929d0e0e473';
  const res = await post(deno.url, '/helloworld/Greeter.Hello', '{"name":"Ada"}', {
    traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
  });
  assert.is(res.status, 200);
  assert.equal(await res.json(), { message: 'Hello Ada' });
  await eventually(() => receiver.spans.length >= 1, 10000, `the span (deno said: ${deno?.output()})`, 50);
  await new Promise((r) => setTimeout(r, 200));
  assert.is(receiver.spans.length, 1, 'one call, one span');
  const [span] = receiver.spans;
  assert.is(span!.traceId, traceId);
  assert.is(span!.parentSpanId, '00f067aa0ba902b7');
  assert.is(span!.name, 'Greeter.Hello');
  assert.is(span!.resource['service.name'], 'helloworld');
  assert.equal(receiver.rejected, []);
});

spans.run();
