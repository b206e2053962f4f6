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
import { rejects, sleep, withTimeout } from '../../helpers.js';
import { Metadata, type MicroError, type NodeRecord, type TransportRequest } from '../../../runtime/core/index.js';
import { LAMBDA_STREAMING_METADATA } from '../../../runtime/plugins/lambda/address.js';
import { createLambdaTransport } from '../../../runtime/plugins/lambda/transport.js';
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

const streamInvoke = (payload: unknown, options: { name?: string; signal?: AbortSignal } = {}) =>
  send(
    api.client.send(
      new InvokeWithResponseStreamCommand({
        FunctionName: options.name ?? 'countdown',
        Payload: new TextEncoder().encode(JSON.stringify(payload)),
      }),
      { abortSignal: options.signal },
    ),
    'InvokeWithResponseStream',
  );

/** Every line of a stream, and its InvokeComplete. */
async function readAll(payload: unknown, name?: string) {
  const out = await streamInvoke(payload, { name });
  const complete: { event?: InvokeWithResponseStreamCompleteEvent } = {};
  const seen: Record<string, any>[] = [];
  for await (const line of lines(out.EventStream!, complete)) seen.push(line);
  return { seen, complete: complete.event };
}

async function create(name: string, timeout: number) {
  await send(
    api.client.send(
      new CreateFunctionCommand({
        FunctionName: name,
        Runtime: 'nodejs22.x',
        Handler: 'index.handler',
        Role: 'arn:aws:iam::000000000000:role/test',
        Code: { ZipFile: new Uint8Array(readFileSync(pkg.zip)) },
        Timeout: timeout,
      }),
    ),
    'CreateFunction',
  );
  await send(
    waitUntilFunctionActiveV2(
      { client: api.client, maxWaitTime: 30, minDelay: 0.05, maxDelay: 0.5 },
      { FunctionName: name },
    ),
    'the Active waiter',
  );
}

// ---
const streaming = suite('InvokeWithResponseStream');
streaming.before(async () => {
  pkg = await buildPackage('test/fixtures/lambda-stream/index.ts');
  api = await startEndpoint();
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-stream-gate-'));
  await Promise.all([create('countdown', 10), create('countdown-short', 2)]);
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

streaming(
  'ends a stream past its deadline (the timeout less a reserve) with a 408 error line and ErrorCode, after its first message',
  async () => {
    const never = join(scratch, 'never');
    const { seen, complete } = await readAll(
      { endpoint: 'Countdown.Count', body: { from: 3, gate: never } },
      'countdown-short',
    );
    assert.equal(seen.slice(0, 2), [{ metadata: { 'countdown-from': '3' } }, { body: { n: 3 } }]);
    assert.is(seen.length, 3);
    assert.is(seen[2]!.error?.code, 408);
    assert.is(complete?.ErrorCode, 'MicroError');
    assert.is(JSON.parse(complete?.ErrorDetails ?? '{}').code, 408);
    // and the next invocation is served
    assert.equal((await readAll({ endpoint: 'Countdown.Count', body: { from: 1 } }, 'countdown-short')).complete, {});
  },
);

streaming(
  'ends a stream whose runtime exits in the middle with InvokeComplete Runtime.ExitError, and recovers',
  async () => {
    const { seen, complete } = await readAll({ endpoint: 'Countdown.Crash', body: {} });
    assert.equal(seen, [{ metadata: {} }, { body: { n: 1 } }]);
    assert.is(complete?.ErrorCode, 'Runtime.ExitError');
    assert.equal((await readAll({ endpoint: 'Countdown.Count', body: { from: 1 } })).complete, {});
  },
);

streaming(
  'lets a caller that goes away mid-stream go: the function runs on to its end, the next call is served',
  async () => {
    const gate = join(scratch, 'abandoned');
    const abort = new AbortController();
    const out = await streamInvoke({ endpoint: 'Countdown.Count', body: { from: 3, gate } }, { signal: abort.signal });
    const events = out.EventStream![Symbol.asyncIterator]();
    const first = await withTimeout(events.next(), 10_000, 'the first chunk');
    assert.ok(first.value?.PayloadChunk, 'a chunk came before the caller left');
    abort.abort();
    await events.return?.();
    writeFileSync(gate, '');
    const again = await readAll({ endpoint: 'Countdown.Count', body: { from: 2 } });
    assert.equal(again.seen.length, 4);
    assert.equal(again.complete, {});
  },
);

streaming('answers a Function URL request with the HTTP prelude, 8 null bytes, then the body', async () => {
  const event = {
    version: '2.0',
    rawPath: '/lambda-stream/Countdown.Hello',
    headers: { 'content-type': 'application/json', host: 'abc.lambda-url.us-east-1.on.aws' },
    body: JSON.stringify({ name: 'Ada' }),
    isBase64Encoded: false,
    requestContext: { domainName: 'abc.lambda-url.us-east-1.on.aws', http: { method: 'POST', path: '/' } },
  };
  const out = await streamInvoke(event);
  const bytes: Uint8Array[] = [];
  let complete: InvokeWithResponseStreamCompleteEvent | undefined;
  for await (const e of out.EventStream!) {
    if (e.PayloadChunk?.Payload) bytes.push(e.PayloadChunk.Payload);
    if (e.InvokeComplete) complete = e.InvokeComplete;
  }
  const all = Buffer.concat(bytes);
  const nulls = all.indexOf(Buffer.alloc(8));
  assert.ok(nulls > 0, 'a prelude, then 8 null bytes');
  const prelude = JSON.parse(all.subarray(0, nulls).toString()) as {
    statusCode: number;
    headers: Record<string, string>;
  };
  assert.is(prelude.statusCode, 200);
  assert.match(prelude.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(JSON.parse(all.subarray(nulls + 8).toString()), { greeting: 'Hello Ada' });
  assert.equal(complete, {});
});

streaming(
  'paces the function by its reader: a reader that stops after one chunk stops it within the buffers on the way',
  async () => {
    const progress = join(scratch, 'progress');
    const stop = join(scratch, 'stop');
    const abort = new AbortController();
    const out = await streamInvoke({ endpoint: 'Countdown.Flood', body: { progress, stop } }, { signal: abort.signal });
    const events = out.EventStream![Symbol.asyncIterator]();
    await withTimeout(events.next(), 10_000, 'the first chunk');
    // The function makes messages only as they are taken: with no more reads, it stops once the buffers between it
    // and the reader (sockets, the SDK's) are full, however long it is given.
    const made = () => Number(readFileSync(progress, 'utf8') || '0');
    let last = -1;
    let same = 0;
    await withTimeout(
      (async () => {
        while (same < 10) {
          await sleep(50);
          const now = made();
          same = now === last ? same + 1 : 0;
          last = now;
        }
      })(),
      15_000,
      'the function to stop making messages',
    );
    // 64 KiB each: the count times 64 KiB is what the way between function and reader holds.
    assert.ok(last < 1000, `${last} messages of 64 KiB made while the reader read one chunk`);
    writeFileSync(stop, '');
    abort.abort();
    await events.return?.();
  },
);

streaming(
  'reports a message that fails in a streaming function as a function error, so it is redelivered',
  async () => {
    const out = await send(
      api.client.send(
        new InvokeCommand({
          FunctionName: 'countdown',
          Payload: new TextEncoder().encode(JSON.stringify({ topic: 'nobody.listens', body: {} })),
        }),
      ),
      'Invoke',
    );
    assert.is(out.FunctionError, 'Unhandled');
    const error = JSON.parse(decoder.decode(out.Payload)) as { errorType: string; errorMessage: string };
    assert.is(error.errorType, 'MicroError');
    assert.ok(JSON.parse(error.errorMessage).code >= 400, error.errorMessage);
  },
);

const countdownNode: NodeRecord = {
  id: 'countdown-1',
  address: 'lambda://us-east-1/countdown',
  metadata: {},
};

streaming(
  'the Lambda transport reads a stream with InvokeWithResponseStream: 3 messages, metadata, trailers',
  async () => {
    const transport = createLambdaTransport({ endpoint: api.url });
    try {
      const node = { ...countdownNode, metadata: { [LAMBDA_STREAMING_METADATA]: 'true' } };
      const response = await withTimeout(
        transport.call(node, request('Countdown.Count', { from: 3 }), { deadline: Date.now() + 20_000 }),
        20_000,
        'the call',
      );
      assert.is(response.metadata.get('countdown-from'), '3');
      const values: unknown[] = [];
      for await (const m of response.stream!) values.push(JSON.parse(decoder.decode(m)));
      assert.equal(values, [{ n: 3 }, { n: 2 }, { n: 1 }]);
      const end = await response.stream!.end;
      assert.is(end.error, undefined);
      assert.is(end.trailers.get('countdown-done'), 'yes');
    } finally {
      await transport.close();
    }
  },
);

streaming('the Lambda transport ends a stream that fails mid-way by throwing its error, after 2 messages', async () => {
  const transport = createLambdaTransport({ endpoint: api.url });
  try {
    const node = { ...countdownNode, metadata: { [LAMBDA_STREAMING_METADATA]: 'true' } };
    const response = await transport.call(node, request('Countdown.Fail', { from: 3 }), {
      deadline: Date.now() + 20_000,
    });
    const values: unknown[] = [];
    const err = await rejects(async () => {
      for await (const m of response.stream!) values.push(JSON.parse(decoder.decode(m)));
    });
    assert.equal(values, [{ n: 3 }, { n: 2 }]);
    assert.is((err as MicroError).code, 409);
    assert.is((await response.stream!.end).error?.code, 409);
    // and a plain endpoint of the same function answers as a plain reply
    const hello = await transport.call(node, request('Countdown.Hello', { name: 'Ada' }), {
      deadline: Date.now() + 20_000,
    });
    assert.equal(JSON.parse(decoder.decode(hello.body)), { greeting: 'Hello Ada' });
    assert.is(hello.stream, undefined);
  } finally {
    await transport.close();
  }
});

function request(endpoint: string, body: unknown): TransportRequest {
  return {
    id: `r-${Math.random()}`,
    service: 'lambda-stream',
    endpoint,
    contentType: 'application/json',
    body: new TextEncoder().encode(JSON.stringify(body)),
    metadata: new Metadata(),
  };
}

runWithRic(streaming);
