/**
 * Traces end to end: a real `micro-fn serve` that exports its functions' spans to a local OTLP receiver. traced-a
 * (called by `micro-fn call` with a traceparent) calls traced-b through ctx.client and publishes an event that
 * traced-c handles: one trace, with every parent link right. The traced fixtures say on stderr each module of
 * OpenTelemetry their process loads (test/fixtures/otel-watch.ts): under serve, none; under `micro-fn invoke`, its own.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, start, tempHome, type Running } from './helpers.js';
import { eventually } from '../helpers.js';
import { startOtlpReceiver, type OtlpReceiver } from '../otlp-receiver.js';

/** OTLP's SpanKind numbers. */
const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let receiver: OtlpReceiver;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 30000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

// ---
const traces = suite('traces through micro-fn serve');

traces.before(async () => {
  receiver = await startOtlpReceiver();
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
  serve = start(['serve', '--address', '127.0.0.1:0'], env);
  await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  for (const name of ['traced-a', 'traced-b', 'traced-c']) await ok(['deploy', `test/fixtures/${name}`]);
});

traces.after(async () => {
  serve?.child.kill('SIGTERM');
  await serve?.exited(10000).catch(() => serve.kill());
  await receiver?.close();
  scratch?.cleanup();
});

traces('a call chain of two functions plus an event is one trace with the right parent links', async () => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const callerSpan = '00f067aa0ba902b7';
  const r = await ok([
    'call',
    'traced-a',
    'Chain.Run',
    '{"name":"Ada"}',
    '--metadata',
    `traceparent=00-${traceId}-${callerSpan}-01`,
    '--metadata',
    'tracestate=vendor=opaque',
  ]);
  assert.equal(JSON.parse(r.stdout), { message: 'Hello Ada', trace: traceId });
  // Five spans: A's server, client and producer spans, B's server span, C's consumer span.
  const find = (name: string, kind: number) => receiver.spans.find((s) => s.name === name && s.kind === kind);
  await eventually(
    () => receiver.spans.filter((s) => s.traceId === traceId).length >= 5,
    20000,
    `5 spans of the trace (received: ${receiver.spans.map((s) => `${s.name}/${s.kind}`).join(', ')})`,
    50,
  );
  const a = find('Chain.Run', SERVER)!;
  const aCall = find('traced-b/Greeter.Hello', CLIENT)!;
  const aPublish = find('traced.event publish', PRODUCER)!;
  const b = find('Greeter.Hello', SERVER)!;
  const c = find('traced.event process', CONSUMER)!;
  for (const [what, span] of Object.entries({ a, aCall, aPublish, b, c }))
    assert.ok(span, `${what} was received: ${receiver.spans.map((s) => `${s.name}/${s.kind}`).join(', ')}`);
  for (const span of [a, aCall, aPublish, b, c]) assert.is(span.traceId, traceId, `${span.name}'s trace`);
  assert.is(a.parentSpanId, callerSpan, "A's server span is a child of the caller's span");
  assert.is(aCall.parentSpanId, a.spanId, "A's client span is a child of A's server span");
  assert.is(aPublish.parentSpanId, a.spanId, "A's producer span is a child of A's server span");
  assert.is(b.parentSpanId, aCall.spanId, "B's server span is a child of A's client span");
  assert.is(c.parentSpanId, aPublish.spanId, "C's consumer span is a child of A's producer span");
  assert.is(new Set([a, aCall, aPublish, b, c].map((s) => s.spanId)).size, 5, 'five distinct span ids');
  // What each invocation's span says.
  assert.is(a.resource['service.name'], 'traced-a');
  assert.is(b.resource['service.name'], 'traced-b');
  assert.is(c.resource['service.name'], 'traced-c');
  assert.is(a.attributes['faas.name'], 'traced-a');
  assert.is(a.attributes['rpc.method'], 'Chain.Run');
  assert.is(a.attributes['micro.status'], 200);
  assert.type(a.attributes['faas.invocation_id'], 'string');
  assert.type(a.attributes['faas.coldstart'], 'boolean');
  assert.is(c.attributes['messaging.destination.name'], 'traced.event');
  assert.type(c.attributes['faas.coldstart'], 'boolean');
  assert.is(a.status.code ?? 0, 0, 'A ended without an error');
  assert.equal(receiver.rejected, []);
  // serve exported them: the function processes loaded nothing of OpenTelemetry (their logs are all there: C's line).
  await eventually(
    async () => (await cli(['logs'], env)).stdout.includes('event for Ada'),
    10000,
    "traced-c's log line",
    100,
  );
  const logs = (await ok(['logs'])).stdout;
  assert.not.match(logs, /otel-watch/, `a function process loaded OpenTelemetry:\n${logs}`);
});

traces('outside serve, micro-fn invoke exports its own span (the watch sees OpenTelemetry load there)', async () => {
  const traceId = 'bbf92f3577b34da6a3ce929d0e0e4736';
  const r = await ok([
    'invoke',
    'test/fixtures/traced-b',
    'Greeter.Hello',
    '{"name":"Ada"}',
    '--metadata',
    `traceparent=00-${traceId}-00f067aa0ba902b7-01`,
  ]);
  assert.match(r.stderr, /otel-watch: .*@opentelemetry\/exporter-trace-otlp-http/);
  await eventually(() => receiver.spans.some((s) => s.traceId === traceId), 10000, "invoke's span", 50);
});

traces(
  'a failure is an error span at every hop it crossed; a request that never reached a handler is none',
  async () => {
    const traceId = 'aaf92f3577b34da6a3ce929d0e0e4736';
    const parent = `traceparent=00-${traceId}-00f067aa0ba902b7-01`;
    const unknown = await cli(['call', 'traced-b', 'Greeter.Nope', '{}', '--metadata', parent], env, {
      timeout: 30000,
    });
    assert.is.not(unknown.code, 0, unknown.stdout);
    // traced-b refuses a request without a name: A's call fails with B's 400, and so does A.
    const failed = await cli(['call', 'traced-a', 'Chain.Run', '{}', '--metadata', parent], env, { timeout: 30000 });
    assert.is.not(failed.code, 0, failed.stdout);
    const ofTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
    await eventually(() => ofTrace().length >= 3, 20000, '3 spans of the failed chain', 50);
    const a = ofTrace().find((s) => s.kind === SERVER && s.name === 'Chain.Run')!;
    const aCall = ofTrace().find((s) => s.kind === CLIENT)!;
    const b = ofTrace().find((s) => s.kind === SERVER && s.name === 'Greeter.Hello')!;
    for (const span of [a, aCall, b]) {
      assert.ok(
        span,
        `received: ${ofTrace()
          .map((s) => `${s.name}/${s.kind}`)
          .join(', ')}`,
      );
      assert.is(span.status.code, 2, `${span.name} (${span.kind}) has status ERROR`);
      assert.match(span.status.message ?? '', /^400 name is required/);
    }
    assert.is(b.attributes['micro.status'], 400);
    assert.is(b.parentSpanId, aCall.spanId);
    assert.not.ok(
      ofTrace().some((s) => s.name === 'Greeter.Nope'),
      'no span for a request that never reached a handler',
    );
  },
);

traces.run();
