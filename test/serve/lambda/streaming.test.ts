// Lambda response streaming end to end: the real AWS SDK's InvokeWithResponseStream (and Invoke) against the local
// Lambda API, running a countdown built for Lambda under the official runtime interface client.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateFunctionCommand,
  InvokeCommand,
  InvokeWithResponseStreamCommand,
  waitUntilFunctionActiveV2,
  type InvokeWithResponseStreamCompleteEvent,
} from '@aws-sdk/client-lambda';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { withTimeout } from '../../helpers.js';
import {
  buildPackage,
  runWithRic,
  startEndpoint,
  type Package,
  type TestEndpoint,
} from '../../adapters/lambda/helpers.js';
import { readFileSync } from 'node:fs';

const decoder = new TextDecoder();
const send = <T>(promise: Promise<T>, what: string) => withTimeout(promise, 20_000, what);

let api: TestEndpoint;
let pkg: Package;
let scratch: string;

/** The stream's lines as they arrive, and how it completed. */
async function* lines(
  events: AsyncIterable<{
    PayloadChunk?: { Payload?: Uint8Array };
    InvokeComplete?: InvokeWithResponseStreamCompleteEvent;
  }>,
  complete: { event?: InvokeWithResponseStreamCompleteEvent },
): AsyncGenerator<Record<string, any>> {
  let partial = '';
  for await (const event of events) {
    if (event.InvokeComplete) complete.event = event.InvokeComplete;
    if (!event.PayloadChunk?.Payload) continue;
    partial += decoder.decode(event.PayloadChunk.Payload);
    const done = partial.split('\n');
    partial = done.pop()!;
    for (const line of done) yield parsed(line);
  }
  if (partial) yield parsed(partial);
}

/** A line of the stream, without the request id its metadata carries (a fresh one each time). */
function parsed(line: string): Record<string, any> {
  const value = JSON.parse(line) as Record<string, any>;
  delete value.metadata?.['micro-id'];
  return value;
}

const streamInvoke = (payload: unknown) =>
  send(
    api.client.send(
      new InvokeWithResponseStreamCommand({
        FunctionName: 'countdown',
        Payload: new TextEncoder().encode(JSON.stringify(payload)),
      }),
    ),
    'InvokeWithResponseStream',
  );

// ---
const streaming = suite('InvokeWithResponseStream');
streaming.before(async () => {
  pkg = await buildPackage('test/fixtures/lambda-stream/index.ts');
  api = await startEndpoint();
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-stream-gate-'));
  await send(
    api.client.send(
      new CreateFunctionCommand({
        FunctionName: 'countdown',
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Role: 'arn:aws:iam::000000000000:role/test',
        Code: { ZipFile: new Uint8Array(readFileSync(pkg.zip)) },
        Timeout: 10,
      }),
    ),
    'CreateFunction',
  );
  await send(
    waitUntilFunctionActiveV2(
      { client: api.client, maxWaitTime: 30, minDelay: 0.05, maxDelay: 0.5 },
      { FunctionName: 'countdown' },
    ),
    'the Active waiter',
  );
});
streaming.after(async () => {
  await api?.close();
  pkg?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

streaming('streams all 5 messages in order, the first while the function still runs, then InvokeComplete', async () => {
  const gate = join(scratch, 'count');
  const out = await streamInvoke({ endpoint: 'Countdown.Count', body: { from: 5, gate } });
  assert.is(out.StatusCode, 200);
  const complete: { event?: InvokeWithResponseStreamCompleteEvent } = {};
  const seen: Record<string, any>[] = [];
  for await (const line of lines(out.EventStream!, complete)) {
    seen.push(line);
    // The function waits for this file after its first message: that message came while it was still running.
    if (line.body?.n === 5) writeFileSync(gate, '');
  }
  assert.equal(seen, [
    { metadata: { 'countdown-from': '5' } },
    ...[5, 4, 3, 2, 1].map((n) => ({ body: { n } })),
    { trailers: { 'countdown-done': 'yes' } },
  ]);
  assert.equal(complete.event, {});
});

streaming(
  'ends a stream that fails in the middle with InvokeComplete ErrorCode, after the 2 messages before it',
  async () => {
    const out = await streamInvoke({ endpoint: 'Countdown.Fail', body: { from: 3 } });
    const complete: { event?: InvokeWithResponseStreamCompleteEvent } = {};
    const seen: Record<string, any>[] = [];
    for await (const line of lines(out.EventStream!, complete)) seen.push(line);
    const error = { id: 'lambda-stream', code: 409, detail: 'the countdown broke at 1', status: 'Conflict' };
    assert.equal(seen, [{ metadata: {} }, { body: { n: 3 } }, { body: { n: 2 } }, { error, trailers: {} }]);
    assert.is(complete.event?.ErrorCode, 'MicroError');
    assert.equal(JSON.parse(complete.event?.ErrorDetails ?? ''), error);
  },
);

streaming("streams a plain endpoint's reply whole, as one JSON value", async () => {
  const out = await streamInvoke({ endpoint: 'Countdown.Hello', body: { name: 'Ada' } });
  const complete: { event?: InvokeWithResponseStreamCompleteEvent } = {};
  const seen: Record<string, any>[] = [];
  for await (const line of lines(out.EventStream!, complete)) seen.push(line);
  assert.equal(seen, [{ body: { greeting: 'Hello Ada' }, metadata: {} }]);
  assert.equal(complete.event, {});
});

streaming('answers a plain Invoke of the stream endpoint with the whole NDJSON', async () => {
  const out = await send(
    api.client.send(
      new InvokeCommand({
        FunctionName: 'countdown',
        Payload: new TextEncoder().encode(JSON.stringify({ endpoint: 'Countdown.Count', body: { from: 3 } })),
      }),
    ),
    'Invoke',
  );
  assert.is(out.FunctionError, undefined);
  const text = decoder.decode(out.Payload);
  assert.equal(text.trimEnd().split('\n').map(parsed), [
    { metadata: { 'countdown-from': '3' } },
    { body: { n: 3 } },
    { body: { n: 2 } },
    { body: { n: 1 } },
    { trailers: { 'countdown-done': 'yes' } },
  ]);
});

streaming('answers a plain Invoke of a plain endpoint as before', async () => {
  const out = await send(
    api.client.send(
      new InvokeCommand({
        FunctionName: 'countdown',
        Payload: new TextEncoder().encode(JSON.stringify({ endpoint: 'Countdown.Hello', body: { name: 'Ada' } })),
      }),
    ),
    'Invoke',
  );
  assert.equal(parsed(decoder.decode(out.Payload)), { body: { greeting: 'Hello Ada' }, metadata: {} });
});

runWithRic(streaming);
