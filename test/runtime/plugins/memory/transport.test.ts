import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Metadata, isMicroError, type Listener, type ServerRequest } from '../../../../runtime/core/index.js';
import { MemoryTransport, createMemoryTransport } from '../../../../runtime/plugins/memory/transport.js';
import { serverResponse, transportContract, transportRequest } from '../../../contracts/transport.js';
import { rejects, withTimeout } from '../../../helpers.js';

const node = (address: string) => ({ id: 'n', address, metadata: {} });

// ---
const memory = suite<{ transport: MemoryTransport; listeners: Listener[] }>('MemoryTransport', {
  transport: new MemoryTransport(),
  listeners: [],
});
memory.before.each((ctx) => {
  ctx.transport = new MemoryTransport();
  ctx.listeners = [];
});
memory.after.each(async (ctx) => {
  await withTimeout(Promise.all(ctx.listeners.map((l) => l.close())), 3000, 'closing listeners');
  await ctx.transport.close();
});

memory('listens at memory://<random id>, a new id for every listener', async (ctx) => {
  const handler = async () => {};
  ctx.listeners.push(await ctx.transport.listen(handler), await ctx.transport.listen(handler));
  const [a, b] = ctx.listeners.map((l) => l.address);
  assert.match(a!, /^memory:\/\/[0-9a-f-]{36}$/);
  assert.is.not(a, b);
});

memory('copies the bytes both ways: neither side can change what the other holds', async (ctx) => {
  let seen: ServerRequest | undefined;
  const sent = new Uint8Array([1, 2, 3]);
  const reply = serverResponse(new Uint8Array([7, 8, 9]));
  const listener = await ctx.transport.listen(async (request, r) => {
    seen = request;
    await r(reply);
    reply.body[0] = 0; // the server reuses its buffer after the reply was handed over
  });
  ctx.listeners.push(listener);
  const request = transportRequest('Bytes.Echo', sent, { 'x-a': '1' });
  const response = await withTimeout(ctx.transport.call(node(listener.address), request));
  sent[0] = 42;
  request.metadata.set('x-a', 'changed');
  assert.equal([...seen!.body], [1, 2, 3]);
  assert.is(seen!.metadata.get('x-a'), '1');
  assert.equal([...response.body], [7, 8, 9]);
  assert.is.not(response.metadata, reply.metadata);
});

memory('reaches only listeners of the same instance', async (ctx) => {
  const listener = await ctx.transport.listen(async (_r, reply) => reply(serverResponse('{}')));
  ctx.listeners.push(listener);
  const other = createMemoryTransport();
  const err = await rejects(() => other.call(node(listener.address), transportRequest('A.B')));
  assert.ok(isMicroError(err));
  assert.is(err.code, 503);
  assert.ok(err.retryable);
});

memory('refuses an unknown address with a retryable 503, like a refused connection', async (ctx) => {
  const err = await rejects(() => ctx.transport.call(node('memory://nobody'), transportRequest('A.B')));
  assert.ok(isMicroError(err));
  assert.is(err.code, 503);
  assert.ok(err.retryable);
});

memory('marks Debug.Health requests as probes', async (ctx) => {
  const probes: (boolean | string | undefined)[] = [];
  const listener = await ctx.transport.listen(async (request, reply) => {
    probes.push(request.probe);
    await reply(serverResponse('{}'));
  });
  ctx.listeners.push(listener);
  await ctx.transport.call(node(listener.address), transportRequest('Debug.Health'));
  await ctx.transport.call(node(listener.address), transportRequest('Greeter.Hello'));
  assert.equal(probes, [true, false]);
});

memory('answers a handler that returns without replying with a 500, and refuses a second reply', async (ctx) => {
  let done!: (value: unknown) => void;
  const second = new Promise<unknown>((resolve) => (done = resolve));
  const silent = await ctx.transport.listen(async () => {});
  const twice = await ctx.transport.listen(async (_r, reply) => {
    await reply(serverResponse('"first"'));
    done(await reply(serverResponse('"second"')).catch((e: unknown) => e));
  });
  ctx.listeners.push(silent, twice);
  assert.is((await withTimeout(ctx.transport.call(node(silent.address), transportRequest('A.B')))).error?.code, 500);
  const response = await withTimeout(ctx.transport.call(node(twice.address), transportRequest('A.B')));
  assert.is(new TextDecoder().decode(response.body), '"first"');
  assert.instance(await withTimeout(second), Error);
});

memory('rejects a deadline that has already passed without running the handler', async (ctx) => {
  let ran = false;
  const listener = await ctx.transport.listen(async (_r, reply) => {
    ran = true;
    await reply(serverResponse('{}'));
  });
  ctx.listeners.push(listener);
  const err = await rejects(() =>
    ctx.transport.call(node(listener.address), transportRequest('A.B'), { deadline: Date.now() - 1 }),
  );
  assert.is((err as { code: number }).code, 408);
  assert.not.ok(ran);
});

memory('close() closes every listener it started', async (ctx) => {
  const listener = await ctx.transport.listen(async (_r, reply) => reply(serverResponse('{}')));
  await withTimeout(ctx.transport.close());
  const err = await rejects(() => ctx.transport.call(node(listener.address), transportRequest('A.B')));
  assert.is((err as { code: number }).code, 503);
});

memory.run();

// ---
const factory = suite('createMemoryTransport');

factory('creates a transport for memory:// addresses with nothing shared between instances', async () => {
  const a = createMemoryTransport();
  const b = createMemoryTransport();
  assert.instance(a, MemoryTransport);
  assert.equal([...a.schemes], ['memory']);
  const listener = await a.listen(async (_r, reply) =>
    reply({ status: 200, contentType: 'text/plain', body: new Uint8Array([1]), metadata: new Metadata() }),
  );
  assert.is((await a.call(node(listener.address), transportRequest('A.B'))).body[0], 1);
  await rejects(() => b.call(node(listener.address), transportRequest('A.B')));
  await Promise.all([a.close(), b.close()]);
});

factory.run();

// ---
transportContract('memory', async () => {
  const transport = createMemoryTransport();
  return { transport, cleanup: () => transport.close() };
});
