import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, isMicroError } from '../../../../runtime/core/index.js';
import { HttpTransport, createHttpTransport } from '../../../../runtime/plugins/http/index.js';
import { serverResponse, transportContract, transportRequest } from '../../../contracts/transport.js';
import { transportStreamContract } from '../../../contracts/transport-stream.js';
import { rejects, withTimeout } from '../../../helpers.js';

const echo = async (request: { body: Uint8Array }, reply: (r: ReturnType<typeof serverResponse>) => Promise<void>) =>
  reply(serverResponse(request.body));
const node = (address: string) => ({ id: 'n', address, metadata: {} });

// ---
const transport = suite<{ transport: HttpTransport }>('HttpTransport', { transport: new HttpTransport() });
transport.before.each((ctx) => {
  ctx.transport = new HttpTransport({ address: '127.0.0.1:0' });
});
transport.after.each((ctx) => withTimeout(ctx.transport.close(), 5000, 'closing the transport'));

transport('reaches http:// and https:// addresses', (ctx) => {
  assert.equal([...ctx.transport.schemes], ['http', 'https']);
});

transport('listens on its own address option when listen() is given none', async (ctx) => {
  const listener = await ctx.transport.listen(echo);
  assert.match(listener.address, /^http:\/\/127\.0\.0\.1:\d+$/);
  const response = await withTimeout(ctx.transport.call(node(listener.address), transportRequest('A.B', '{"x":1}')));
  assert.is(new TextDecoder().decode(response.body), '{"x":1}');
});

transport('hands maxBodySize to its listeners: a larger body comes back as a 413 error reply', async (ctx) => {
  const small = new HttpTransport({ maxBodySize: 16 });
  try {
    const listener = await small.listen(echo, { address: '127.0.0.1:0' });
    const response = await withTimeout(
      small.call(node(listener.address), transportRequest('A.B', JSON.stringify({ text: 'more than sixteen bytes' }))),
    );
    assert.is(response.error?.code, 413);
    assert.not.ok(response.error?.retryable);
  } finally {
    await small.close();
  }
});

transport('close() closes every listener it started; calls then fail with a retryable 503', async (ctx) => {
  const listeners = await Promise.all([ctx.transport.listen(echo), ctx.transport.listen(echo)]);
  await withTimeout(ctx.transport.close(), 5000, 'close');
  for (const listener of listeners) {
    const err = await rejects(() => withTimeout(ctx.transport.call(node(listener.address), transportRequest('A.B'))));
    assert.ok(isMicroError(err));
    assert.is(err.code, 503);
    assert.ok(err.retryable);
    assert.ok(err.cause, 'the fetch failure is kept as cause');
  }
});

transport('rejects a listen address it cannot use with a ConfigError', async (ctx) => {
  const err = await rejects(() => ctx.transport.listen(echo, { address: 'localhost' }));
  assert.instance(err, ConfigError);
  assert.match((err as ConfigError).message, /looks like 127\.0\.0\.1:0/);
});

transport.run();

// ---
const factory = suite('createHttpTransport');

factory('creates an HttpTransport', () => {
  assert.instance(createHttpTransport(), HttpTransport);
});

factory('loads no node: module until listen() is called, so the client half bundles for Workers', async () => {
  const entry = fileURLToPath(new URL('../../../../runtime/plugins/http/index.ts', import.meta.url));
  const lazy: string[] = [];
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'neutral',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    plugins: [
      {
        name: 'lazy-external',
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) => {
            if (args.kind === 'dynamic-import') {
              lazy.push(args.path);
              return { path: args.path, external: true };
            }
            return undefined;
          });
        },
      },
    ],
  });
  assert.equal(lazy, ['./listener.js'], 'only the listener is loaded lazily');
  const code = result.outputFiles[0]!.text;
  assert.not.match(code, /from\s*["']node:/, 'no static node: import');
  assert.not.match(code, /\bBuffer\b|\bprocess\./, 'no Node global');
});

factory.run();

// ---
transportContract('http', async () => {
  const http = createHttpTransport();
  return { transport: http, cleanup: () => http.close() };
});

transportStreamContract('http', async () => {
  const http = createHttpTransport();
  return { transport: http, cleanup: () => http.close() };
});
