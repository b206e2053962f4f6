/**
 * The one mucp-over-HTTP fetch handler (Workers, Deno, Lambda Function URLs): tested here once, against a Runner
 * with no plugins, with Web-standard Requests; every target runs it again in the target contract suite.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Runner, errors, type Context, type ServiceDefinition } from '../../../../runtime/core/index.js';
import { createFetchHandler } from '../../../../runtime/plugins/http/fetch.js';
import { LINGER_BYTES } from '../../../../runtime/plugins/http/read-all.js';
import { withTimeout } from '../../../helpers.js';

interface Counts {
  hello: number;
  stopped: number;
}

function greeter(counts: Counts, extra: Partial<ServiceDefinition> = {}): ServiceDefinition {
  return {
    name: 'greeter',
    handlers: {
      Greeter: {
        Hello(req: { name?: unknown }, ctx: Context) {
          counts.hello++;
          if (typeof req.name !== 'string') throw errors.badRequest('greeter', 'name is required');
          ctx.responseMetadata.set('x-answer', `for ${ctx.metadata.get('x-question') ?? 'nobody'}`);
          return {
            message: `Hello ${req.name}`,
            deadline: ctx.deadline === undefined ? null : ctx.deadline - Date.now(),
          };
        },
      },
    },
    afterStop: () => void counts.stopped++,
    ...extra,
  };
}

const none = async () => ({ transports: [], close: async () => {} });
const post = (path: string, body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) =>
  new Request(`http://fn.test${path}`, { method: 'POST', body, headers, duplex: 'half' } as RequestInit);

// ---
const fetchSuite = suite('createFetchHandler');

fetchSuite('routes POST /<service>/<Service.Method>, carries metadata both ways and echoes Micro-Id', async () => {
  const counts = { hello: 0, stopped: 0 };
  const handle = createFetchHandler(new Runner(greeter(counts), { env: {}, plugins: none }));
  const res = await handle(
    post('/greeter/Greeter.Hello', '{"name":"Ada"}', { 'x-question': 'Ada', 'micro-id': 'call-1' }),
  );
  assert.is(res.status, 200);
  assert.is(res.headers.get('x-answer'), 'for Ada');
  assert.is(res.headers.get('micro-id'), 'call-1');
  assert.is(((await res.json()) as { message: string }).message, 'Hello Ada');
  assert.equal(counts, { hello: 1, stopped: 1 }, 'one handler run, and the function stopped before the Response');
});

fetchSuite('answers GET /health without running a handler, and refuses what it cannot route', async () => {
  const counts = { hello: 0, stopped: 0 };
  const handle = createFetchHandler(new Runner(greeter(counts), { env: {}, plugins: none }));
  const health = await handle(new Request('http://fn.test/health'));
  assert.equal([health.status, await health.json()], [200, { status: 'ok' }]);
  const method = await handle(new Request('http://fn.test/greeter/Greeter.Hello', { method: 'PUT', body: '{}' }));
  assert.equal([method.status, method.headers.get('allow')], [405, 'POST']);
  const path = await handle(post('/a/b/c', '{}'));
  assert.is(path.status, 404);
  const unnamed = await handle(post('/', '{}'));
  assert.is(unnamed.status, 400);
  const unknown = await handle(post('/greeter/Greeter.Bye', '{}'));
  assert.is(unknown.status, 404);
  const refused = await handle(post('/greeter/Greeter.Hello', '{}'));
  assert.equal(JSON.parse(refused.headers.get('micro-error')!), await refused.json());
  assert.is(counts.hello, 1, 'only the refused request reached the handler');
});

fetchSuite(
  'refuses a body over the limit with 413, by Content-Length and while streaming one without it (read to its end, up to 8 MiB more)',
  async () => {
    const counts = { hello: 0, stopped: 0 };
    const handle = createFetchHandler(new Runner(greeter(counts), { env: {}, plugins: none }), { maxBodySize: 64 });
    const declared = await handle(post('/greeter/Greeter.Hello', 'x'.repeat(65), { 'content-length': '65' }));
    assert.is(declared.status, 413);
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(40));
        if (pulled === 100) controller.close();
      },
    });
    const streamed = await handle(post('/greeter/Greeter.Hello', stream));
    assert.is(streamed.status, 413);
    // Read to its end, and dropped: a host answering while the caller still sends closes the connection under it.
    assert.is(pulled, 100);
    // An endless body: read and dropped up to LINGER_BYTES past the limit, then cancelled.
    let made = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull: (controller) => void (made++, controller.enqueue(new Uint8Array(64 * 1024))),
      cancel: () => void (cancelled = true),
    });
    assert.is((await handle(post('/greeter/Greeter.Hello', endless))).status, 413);
    assert.ok(cancelled);
    assert.ok(made * 64 * 1024 <= LINGER_BYTES + 3 * 64 * 1024, `${made} chunks of 64 KiB read`);
    assert.is(counts.hello, 0);
  },
);

fetchSuite("caps the deadline at the host's remaining time; a caller's shorter Micro-Timeout wins", async () => {
  const handle = createFetchHandler(new Runner(greeter({ hello: 0, stopped: 0 }), { env: {}, plugins: none }));
  const capped = (await (
    await handle(post('/greeter/Greeter.Hello', '{"name":"a"}'), { remainingMs: 900 })
  ).json()) as { deadline: number };
  assert.ok(capped.deadline > 0 && capped.deadline <= 900, `deadline ${capped.deadline}`);
  const shorter = await handle(post('/greeter/Greeter.Hello', '{"name":"a"}', { 'micro-timeout': '300' }), {
    remainingMs: 900,
  });
  const { deadline } = (await shorter.json()) as { deadline: number };
  assert.ok(deadline > 0 && deadline <= 300, `deadline ${deadline}`);
});

fetchSuite('with waitUntil, answers as soon as the reply exists and stops the function within the event', async () => {
  const counts = { hello: 0, stopped: 0 };
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const definition = greeter(counts, { afterStop: () => held.then(() => void counts.stopped++) });
  const handle = createFetchHandler(new Runner(definition, { env: {}, plugins: none }));
  const pending: Promise<unknown>[] = [];
  const res = await withTimeout(
    handle(post('/greeter/Greeter.Hello', '{"name":"Ada"}'), { waitUntil: (p) => void pending.push(p) }),
    2000,
    'the Response',
  );
  assert.is(res.status, 200);
  assert.is(counts.stopped, 0, 'the function is still stopping');
  assert.is(pending.length, 1);
  release();
  await withTimeout(pending[0]!, 2000, 'the rest of the event');
  assert.is(counts.stopped, 1);
});

fetchSuite('answers a failure outside the handler (a beforeStart hook) with a 500 that hides its detail', async () => {
  const reports: unknown[] = [];
  const definition = greeter(
    { hello: 0, stopped: 0 },
    { beforeStart: () => Promise.reject(new Error('secret: the database password is hunter2')) },
  );
  const handle = createFetchHandler(
    new Runner(definition, { env: {}, plugins: none, report: (_m, err) => void reports.push(err) }),
  );
  const res = await handle(post('/greeter/Greeter.Hello', '{"name":"Ada"}'));
  assert.is(res.status, 500);
  const body = await res.text();
  assert.not.match(body, 'hunter2');
  assert.is((JSON.parse(body) as { detail: string }).detail, 'internal server error');
  assert.is(reports.length, 1, 'the reason went to the report');
});

fetchSuite.run();

// ---
const streams = suite('createFetchHandler: server streams');

function countdown(counts: Counts): ServiceDefinition {
  return greeter(counts, {
    handlers: {
      Countdown: {
        async *Count(req: { from: number }, ctx: Context) {
          ctx.responseMetadata.set('x-from', String(req.from));
          for (let n = req.from; n > 0; n--) yield { n };
          ctx.trailers.set('x-total', String(req.from));
        },
        async *Fail() {
          yield 1;
          throw errors.conflict('greeter', 'gave up');
        },
      },
    },
  });
}

streams(
  'answers a server stream as NDJSON read as it is pulled; the function stops once it was read (3 items)',
  async () => {
    const counts = { hello: 0, stopped: 0 };
    const handle = createFetchHandler(new Runner(countdown(counts), { env: {}, plugins: none }));
    const res = await withTimeout(handle(post('/greeter/Countdown.Count', '{"from":3}')));
    assert.is(res.headers.get('content-type'), 'application/x-ndjson');
    assert.is(res.headers.get('x-from'), '3');
    assert.is(counts.stopped, 0, 'the function waits for its stream');
    assert.is(await withTimeout(res.text()), '{"n":3}\n{"n":2}\n{"n":1}\n');
    await withTimeout(
      (async () => {
        while (counts.stopped === 0) await new Promise((r) => setTimeout(r, 5));
      })(),
    );
  },
);

streams(
  'answers an EventSource GET with SSE closed by its end event; an error mid-stream errors an NDJSON body',
  async () => {
    const counts = { hello: 0, stopped: 0 };
    const handle = createFetchHandler(new Runner(countdown(counts), { env: {}, plugins: none }));
    const res = await withTimeout(
      handle(
        new Request(`http://fn.test/greeter/Countdown.Count?request=${encodeURIComponent('{"from":1}')}`, {
          headers: { accept: 'text/event-stream' },
        }),
      ),
    );
    assert.is(await withTimeout(res.text()), 'data: {"n":1}\n\nevent: end\ndata: {"x-total":"1"}\n\n');
    const failed = await withTimeout(handle(post('/greeter/Countdown.Fail', '{}')));
    let thrown = false;
    try {
      await withTimeout(failed.text());
    } catch {
      thrown = true;
    }
    assert.ok(thrown, 'the body errors: the caller never sees a clean end');
  },
);

streams.run();
