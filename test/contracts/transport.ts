/** The Transport contract: every transport plugin (memory, HTTP, NATS) runs this suite with its own factory. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Client,
  Dispatcher,
  Metadata,
  MicroError,
  Router,
  errors,
  isMicroError,
  jsonCodec,
} from '../../runtime/core/index.js';
import type {
  Listener,
  NodeRecord,
  RequestHandler,
  ServerResponse,
  Transport,
  TransportRequest,
} from '../../runtime/core/index.js';
import { rejects, sleep, withTimeout } from '../helpers.js';

export interface TransportFixture {
  transport: Transport;
  /** Closes the transport and whatever the factory opened for it (servers, connections). */
  cleanup(): Promise<void>;
}

interface Context {
  fixture?: TransportFixture;
  listeners: Listener[];
  /** Lets handlers that a test left waiting finish, so that every listener can close. */
  release: (() => void)[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** A request as a client would send it. */
export function transportRequest(
  endpoint: string,
  body: Uint8Array | string = '{}',
  metadata: Record<string, string> = {},
): TransportRequest {
  return {
    id: crypto.randomUUID(),
    service: 'greeter',
    endpoint,
    contentType: 'application/json',
    body: typeof body === 'string' ? enc.encode(body) : body,
    metadata: new Metadata(metadata),
  };
}

/** A reply as a dispatcher would build it. */
export function serverResponse(
  body: Uint8Array | string,
  metadata: Record<string, string> = {},
  contentType = 'application/json',
): ServerResponse {
  return {
    status: 200,
    contentType,
    body: typeof body === 'string' ? enc.encode(body) : body,
    metadata: new Metadata(metadata),
  };
}

function errorResponse(error: MicroError): ServerResponse {
  return {
    status: error.code,
    contentType: 'application/json',
    body: enc.encode(JSON.stringify(error)),
    metadata: new Metadata(),
    error,
  };
}

/** A promise and its resolver, for a handler the test holds up. */
function gate(ctx: Context): { open: () => void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  ctx.release.push(open);
  return { open, opened };
}

export function transportContract(name: string, create: () => Promise<TransportFixture>): void {
  const test = suite<Context>(`${name} transport contract`, { listeners: [], release: [] });
  const transportOf = (ctx: Context) => ctx.fixture!.transport;
  async function listen(ctx: Context, handler: RequestHandler): Promise<NodeRecord> {
    const listener = await withTimeout(transportOf(ctx).listen!(handler, { address: '127.0.0.1:0' }), 5000, 'listen');
    ctx.listeners.push(listener);
    return { id: `node-${ctx.listeners.length}`, address: listener.address, metadata: {} };
  }
  const call = (ctx: Context, node: NodeRecord, request: TransportRequest, ms = 5000) =>
    withTimeout(transportOf(ctx).call(node, request), ms, 'call');

  test.before.each(async (ctx) => {
    ctx.listeners = [];
    ctx.release = [];
    ctx.fixture = await withTimeout(create(), 10_000, 'creating the transport');
  });
  test.after.each(async (ctx) => {
    const fixture = ctx.fixture;
    ctx.fixture = undefined; // after.each runs again when it throws: never clean up twice
    for (const open of ctx.release) open();
    await withTimeout(Promise.all(ctx.listeners.map((l) => l.close())), 5000, 'closing the listeners');
    await withTimeout(fixture?.cleanup() ?? Promise.resolve(), 5000, 'cleanup');
  });

  test('can listen: the transport has listen() and a scheme that matches its listener address', async (ctx) => {
    assert.type(transportOf(ctx).listen, 'function');
    const node = await listen(ctx, async (_r, reply) => reply(serverResponse('{}')));
    assert.ok(
      transportOf(ctx).schemes.some((s) => node.address.startsWith(`${s}://`)),
      node.address,
    );
  });

  test('carries body and metadata to the handler, and the reply with its metadata back', async (ctx) => {
    let seen: TransportRequest | undefined;
    const node = await listen(ctx, async (request, reply) => {
      seen = request;
      await reply(
        serverResponse(`{"echo":${dec.decode(request.body)}}`, {
          'X-Reply': 'from-handler',
          'micro-trace-id': request.metadata.get('Micro-Trace-Id') ?? '',
        }),
      );
    });
    const request = transportRequest('Greeter.Hello', '{"name":"Ada"}', {
      'X-Custom': 'abc',
      'Micro-Trace-Id': 't-1',
      authorization: 'Bearer x',
    });
    const response = await call(ctx, node, request);
    assert.ok(seen, 'the handler ran');
    assert.is(seen.id, request.id);
    assert.is(seen.service, 'greeter');
    assert.is(seen.endpoint, 'Greeter.Hello');
    assert.is(seen.contentType, 'application/json');
    assert.is(dec.decode(seen.body), '{"name":"Ada"}');
    assert.is(seen.metadata.get('x-custom'), 'abc');
    assert.is(seen.metadata.get('AUTHORIZATION'), 'Bearer x');
    assert.is(response.error, undefined);
    assert.is(response.contentType, 'application/json');
    assert.equal(JSON.parse(dec.decode(response.body)), { echo: { name: 'Ada' } });
    assert.is(response.metadata.get('x-reply'), 'from-handler');
    assert.is(response.metadata.get('X-REPLY'), 'from-handler');
    assert.is(response.metadata.get('Micro-Trace-Id'), 't-1');
  });

  test('delivers an error reply as a MicroError with id, code and detail intact', async (ctx) => {
    const node = await listen(ctx, async (_r, reply) =>
      reply(errorResponse(errors.badRequest('greeter', 'name is required'))),
    );
    const response = await call(ctx, node, transportRequest('Greeter.Hello'));
    assert.ok(isMicroError(response.error), 'error is a MicroError');
    assert.equal(response.error.toJSON(), {
      id: 'greeter',
      code: 400,
      detail: 'name is required',
      status: 'Bad Request',
    });
    assert.equal(JSON.parse(dec.decode(response.body)), {
      id: 'greeter',
      code: 400,
      detail: 'name is required',
      status: 'Bad Request',
    });
  });

  test('answers a handler that throws with a 500 error, never leaving the caller hanging', async (ctx) => {
    const node = await listen(ctx, async () => {
      throw new Error('boom: a bug');
    });
    const response = await call(ctx, node, transportRequest('Greeter.Hello'));
    assert.is(response.error?.code, 500);
    assert.not.match(response.error!.detail, /boom/, 'the bug stays out of the reply');
  });

  test('serves a Dispatcher end to end: a reply, a handler error and malformed JSON', async (ctx) => {
    const router = new Router({
      name: 'greeter',
      handlers: {
        Greeter: {
          Hello(r: { name?: unknown }) {
            if (typeof r.name !== 'string') throw errors.badRequest('greeter', 'name is required');
            return { message: `Hello ${r.name}` };
          },
        },
      },
    });
    const dispatcher = new Dispatcher({
      service: 'greeter',
      router,
      codecs: [jsonCodec],
      logger: quiet,
      client: new Client(),
      broker: undefined,
      env: {},
    });
    const node = await listen(ctx, async (request, reply) => reply(await dispatcher.handle(request)));
    const ok = await call(ctx, node, transportRequest('Greeter.Hello', '{"name":"Ada"}'));
    assert.equal(JSON.parse(dec.decode(ok.body)), { message: 'Hello Ada' });
    const bad = await call(ctx, node, transportRequest('Greeter.Hello', '{}'));
    assert.equal(bad.error?.toJSON(), { id: 'greeter', code: 400, detail: 'name is required', status: 'Bad Request' });
    const malformed = await call(ctx, node, transportRequest('Greeter.Hello', '{"name":'));
    assert.is(malformed.error?.code, 400);
  });

  test('passes a health probe (Debug.Health) to the handler, which answers it', async (ctx) => {
    const probes: boolean[] = [];
    const node = await listen(ctx, async (request, reply) => {
      probes.push(request.probe === true || request.endpoint === 'Debug.Health');
      await reply(serverResponse('{"status":"ok"}'));
    });
    const response = await call(ctx, node, transportRequest('Debug.Health', ''));
    assert.equal(probes, [true]);
    assert.equal(JSON.parse(dec.decode(response.body)), { status: 'ok' });
  });

  test('fails a call to a closed listener with a retryable error marked unreachable (nothing was sent)', async (ctx) => {
    const node = await listen(ctx, async (_r, reply) => reply(serverResponse('{}')));
    await call(ctx, node, transportRequest('Greeter.Hello'));
    await withTimeout(ctx.listeners[0]!.close(), 5000, 'close');
    // A listener that has closed, not one closing under the call: the client has seen its connections end. (A request
    // written to a kept-alive connection as the server closes it may have arrived: that one is not retried.)
    await sleep(50);
    const err = await rejects(() => call(ctx, node, transportRequest('Greeter.Hello')));
    assert.ok(isMicroError(err), `a MicroError, got ${String(err)}`);
    assert.ok(err.retryable, `retryable (code ${err.code}: ${err.detail})`);
    assert.ok(err.unreachable, 'unreachable: a client skips the node');
  });

  test('rejects with a 408 that is not retryable once the deadline passes', async (ctx) => {
    const { opened } = gate(ctx);
    const node = await listen(ctx, async (_r, reply) => {
      await opened;
      await reply(serverResponse('{}')).catch(() => {});
    });
    const started = Date.now();
    const err = await rejects(() =>
      withTimeout(
        transportOf(ctx).call(node, transportRequest('Greeter.Hello'), { deadline: Date.now() + 150 }),
        3000,
        'call',
      ),
    );
    assert.ok(isMicroError(err), `a MicroError, got ${String(err)}`);
    assert.is(err.code, 408);
    assert.not.ok(err.retryable);
    assert.ok(Date.now() - started >= 100, 'it waited for the deadline');
  });

  test('rejects with 408 when the caller aborts its signal', async (ctx) => {
    const { opened } = gate(ctx);
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const node = await listen(ctx, async (_r, reply) => {
      entered();
      await opened;
      await reply(serverResponse('{}')).catch(() => {});
    });
    const controller = new AbortController();
    const pending = transportOf(ctx).call(node, transportRequest('Greeter.Hello'), { signal: controller.signal });
    await withTimeout(inHandler, 3000, 'the handler to start');
    controller.abort();
    const err = await rejects(() => withTimeout(pending, 3000, 'call'));
    assert.is((err as MicroError).code, 408);
  });

  test('carries a 512 KiB body intact both ways', async (ctx) => {
    const big = new Uint8Array(512 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    let received = -1;
    const node = await listen(ctx, async (request, reply) => {
      received = request.body.byteLength;
      await reply(serverResponse(request.body, {}, 'application/octet-stream'));
    });
    const response = await call(
      ctx,
      node,
      { ...transportRequest('Blob.Echo', big), contentType: 'application/octet-stream' },
      10_000,
    );
    assert.is(received, big.length);
    assert.is(response.error, undefined);
    assert.is(response.body.byteLength, big.length);
    assert.ok(Buffer.from(response.body).equals(Buffer.from(big)), 'the bytes came back unchanged');
  });

  test('gives concurrent calls their own replies', async (ctx) => {
    const node = await listen(ctx, async (request, reply) => {
      const { n } = JSON.parse(dec.decode(request.body)) as { n: number };
      await new Promise((r) => setTimeout(r, (n * 7) % 30));
      await reply(serverResponse(JSON.stringify({ n }), { 'x-n': String(n) }));
    });
    const ns = Array.from({ length: 25 }, (_, i) => i);
    const responses = await Promise.all(
      ns.map((n) => call(ctx, node, transportRequest('Echo.N', JSON.stringify({ n })))),
    );
    assert.equal(
      responses.map((r) => JSON.parse(dec.decode(r.body)).n),
      ns,
    );
    assert.equal(
      responses.map((r) => r.metadata.get('x-n')),
      ns.map(String),
    );
  });

  test('close() answers a request already received before it resolves', async (ctx) => {
    const { open, opened } = gate(ctx);
    let entered!: () => void;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const node = await listen(ctx, async (_r, reply) => {
      entered();
      await opened;
      await reply(serverResponse('{"late":true}'));
    });
    const pending = call(ctx, node, transportRequest('Slow.Reply'));
    await withTimeout(inHandler, 3000, 'the handler to start');
    let closed = false;
    const closing = ctx.listeners[0]!.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.not.ok(closed, 'close() waits for the in-flight request');
    open();
    assert.equal(JSON.parse(dec.decode((await pending).body)), { late: true });
    await withTimeout(closing, 3000, 'close');
  });

  test.run();
}
