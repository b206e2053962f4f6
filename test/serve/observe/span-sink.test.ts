/** spanOf: what a function process sends is checked field by field before serve exports it. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spanOf } from '../../../serve/observe/span-sink.js';

const good = {
  name: 'Greeter.Hello',
  kind: 'server',
  context: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: 1 },
  parent: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b8', flags: 1, remote: true },
  start: 1000.5,
  end: 1002.25,
  info: { function: 'helloworld', endpoint: 'Greeter.Hello', status: 400, coldStart: false },
  error: { code: 400, detail: 'name is required' },
};

// ---
const span = suite('spanOf');

span('keeps a well-formed span as it is', () => {
  assert.equal(spanOf(JSON.parse(JSON.stringify(good))), good);
});

span('refuses a span with a bad id, kind, time, parent, info or error (9 of 9 refused)', () => {
  const bad: unknown[] = [
    null,
    { ...good, kind: 'weird' },
    { ...good, context: { ...good.context, traceId: 'XYZ' } },
    { ...good, context: { ...good.context, spanId: '0'.repeat(15) } },
    { ...good, end: 10 },
    { ...good, start: 'soon' },
    { ...good, parent: { spanId: 'nope' } },
    { ...good, info: { status: '200' } },
    { ...good, error: { code: 500, detail: 'x'.repeat(5000) } },
  ];
  assert.equal(
    bad.map((b) => spanOf(b)),
    bad.map(() => undefined),
  );
});

span('drops what a span does not have: extra fields never reach the exporter', () => {
  const out = spanOf({ ...good, info: { ...good.info, secret: 'x' }, extra: 1 });
  assert.ok(out);
  assert.not.ok('extra' in out!);
  assert.not.ok('secret' in out!.info);
});

span.run();
