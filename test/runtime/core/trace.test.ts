import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Metadata,
  RecordingTracer,
  formatTraceparent,
  nonRecordingTracer,
  newSpanId,
  newTraceId,
  parseTraceparent,
  type SpanData,
} from '../../../runtime/core/index.js';
import { withTimeout } from '../../helpers.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

// ---
const parse = suite('parseTraceparent');

parse('reads a version 00 traceparent and passes tracestate through', () => {
  assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'), {
    traceId: TRACE,
    spanId: SPAN,
    flags: 1,
    state: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
  });
  assert.equal(parseTraceparent(` 00-${TRACE}-${SPAN}-00 `), { traceId: TRACE, spanId: SPAN, flags: 0 });
});

parse('reads a later version with extra fields, as the spec asks', () => {
  assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01-what-comes-next`)?.spanId, SPAN);
});

parse('ignores every malformed header (24 of them) and never throws', () => {
  const bad: unknown[] = [
    undefined,
    null,
    42,
    {},
    ['00', TRACE],
    '',
    '00',
    `00-${TRACE}-${SPAN}`,
    `00-${TRACE}-${SPAN}-1`,
    `00-${TRACE}-${SPAN}-001`,
    `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
    `ff-${TRACE}-${SPAN}-01`, // version ff is invalid
    `0-${TRACE}-${SPAN}-01`,
    `00-${'0'.repeat(32)}-${SPAN}-01`, // all-zero trace id
    `00-${TRACE}-${'0'.repeat(16)}-01`, // all-zero span id
    `00-${TRACE.toUpperCase()}-${SPAN}-01`, // upper case
    `00-${TRACE}-${SPAN.toUpperCase()}-01`,
    `00-${TRACE.slice(1)}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}0-01`,
    `00-${TRACE}-${SPAN}-0g`,
    `00_${TRACE}_${SPAN}_01`,
    `00-${TRACE}-${SPAN}-01`.repeat(20),
    'x'.repeat(100_000),
    `zz-${TRACE}-${SPAN}-01`,
  ];
  assert.is(bad.length, 24);
  for (const value of bad) assert.is(parseTraceparent(value), undefined, JSON.stringify(value)?.slice(0, 80));
});

parse('drops a tracestate that is too long or not printable, keeping the traceparent', () => {
  const long = `k=${'v'.repeat(600)}`;
  assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-01`, long), { traceId: TRACE, spanId: SPAN, flags: 1 });
  assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'a=b\nc=d'), { traceId: TRACE, spanId: SPAN, flags: 1 });
  assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 7), { traceId: TRACE, spanId: SPAN, flags: 1 });
});

parse.run();

// ---
const format = suite('formatTraceparent');

format('writes version 00 with two hex digits of flags, and reads back what it wrote', () => {
  assert.is(formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 1 }), `00-${TRACE}-${SPAN}-01`);
  assert.is(formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 0 }), `00-${TRACE}-${SPAN}-00`);
  const context = { traceId: newTraceId(), spanId: newSpanId(), flags: 1 };
  assert.equal(parseTraceparent(formatTraceparent(context)), context);
});

format.run();

// ---
const ids = suite('newTraceId');

ids('makes 32 and 16 lower-case hex digits, different each time', () => {
  const traces = new Set(Array.from({ length: 100 }, newTraceId));
  const spans = new Set(Array.from({ length: 100 }, newSpanId));
  assert.is(traces.size, 100);
  assert.is(spans.size, 100);
  for (const t of traces) assert.match(t, /^[0-9a-f]{32}$/);
  for (const s of spans) assert.match(s, /^[0-9a-f]{16}$/);
});

ids.run();

// ---
const off = suite('nonRecordingTracer');

off('records nothing and leaves the metadata as it came', async () => {
  const t = nonRecordingTracer();
  assert.not.ok(t.recording);
  const metadata = new Metadata({ traceparent: `00-${TRACE}-${SPAN}-01` });
  assert.is(t.start('Greeter.Hello', 'client', metadata, {}), undefined);
  assert.is(metadata.get('traceparent'), `00-${TRACE}-${SPAN}-01`);
  await t.flush(10);
});

off.run();

// ---
const tracer = suite('RecordingTracer');

function recording(): { tracer: RecordingTracer; sent: SpanData[][]; loads: number } {
  const state = { sent: [] as SpanData[][], loads: 0, tracer: undefined as unknown as RecordingTracer };
  state.tracer = new RecordingTracer({
    exporter: async () => {
      state.loads++;
      return { export: async (spans) => void state.sent.push([...spans]) };
    },
  });
  return state;
}

tracer('starts an invocation span in the trace its metadata carries, and a root without one', async () => {
  const { tracer: t, sent } = recording();
  t.coldStart = true;
  const incoming = new Metadata({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'a=b' });
  const child = t.start('Greeter.Hello', 'server', incoming, { id: '1' })!;
  assert.is(child.context.traceId, TRACE);
  assert.is.not(child.context.spanId, SPAN);
  assert.is(child.context.state, 'a=b');
  assert.is(incoming.get('traceparent'), `00-${TRACE}-${SPAN}-01`, 'a server span leaves the metadata alone');
  const root = t.start('Greeter.Hello', 'server', new Metadata({ traceparent: 'garbage' }), {})!;
  assert.is.not(root.context.traceId, TRACE);
  assert.is(root.context.flags, 1);
  child.end(500, { code: 500, detail: 'boom' });
  child.end(); // once only
  root.end();
  await t.flush(1000);
  assert.is(sent.length, 1);
  assert.is(sent[0]!.length, 2);
  assert.equal(sent[0]![0]!.parent, { traceId: TRACE, spanId: SPAN, flags: 1, state: 'a=b', remote: true });
  assert.equal(sent[0]![0]!.error, { code: 500, detail: 'boom' });
  assert.equal(sent[0]![0]!.info, { id: '1', coldStart: true, status: 500 });
  assert.ok(sent[0]![0]!.end >= sent[0]![0]!.start);
  assert.is(sent[0]![1]!.parent, undefined);
  t.start('again', 'server', new Metadata(), {})!.end();
  await t.flush(1000);
  assert.is(sent.length, 2, 'a second flush sends the spans ended since');
});

tracer(
  'a client span replaces the traceparent it is sent with by its own; track ends it with the outcome',
  async () => {
    const { tracer: t, sent } = recording();
    const outgoing = new Metadata({ traceparent: `00-${TRACE}-${SPAN}-01` });
    const span = t.start('b/B.Echo', 'client', outgoing, {})!;
    assert.is(outgoing.get('traceparent'), span.traceparent);
    assert.is(span.traceparent, `00-${TRACE}-${span.context.spanId}-01`);
    await span.track(Promise.reject(Object.assign(new Error('x'), { code: 404, detail: 'not found' }))).catch(() => {});
    await t.flush(1000);
    assert.equal(sent[0]![0]!.error, { code: 404, detail: 'not found' });
    assert.is(sent[0]![0]!.parent?.remote, false);
  },
);

tracer('records nothing under a parent that asked not to be sampled', async () => {
  const state = recording();
  const { tracer: t, sent } = state;
  const metadata = new Metadata({ traceparent: `00-${TRACE}-${SPAN}-00` });
  assert.is(t.start('Greeter.Hello', 'client', metadata, {}), undefined);
  assert.is(metadata.get('traceparent'), `00-${TRACE}-${SPAN}-00`, 'passed on unchanged');
  await t.flush(1000);
  assert.is(sent.length, 0);
  assert.is(state.loads, 0, 'nothing to send: the exporter is never loaded');
});

tracer('a flush gives up on an exporter that never answers, after the bound, and never rejects', async () => {
  const t = new RecordingTracer({ exporter: async () => ({ export: () => new Promise<void>(() => {}) }) });
  t.start('x', 'server', new Metadata(), {})!.end();
  await withTimeout(t.flush(50), 5000, 'a flush bounded at 50 ms');
  const failing = new RecordingTracer({
    exporter: async () => {
      throw new Error('no collector');
    },
  });
  failing.start('x', 'server', new Metadata(), {})!.end();
  await failing.flush(1000); // resolves
});

tracer.run();
