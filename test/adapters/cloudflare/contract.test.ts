/**
 * The target contract on Cloudflare Workers: each function built as a Worker and run in real workerd (miniflare),
 * on 127.0.0.1. HTTP arrives through dispatchFetch, messages as queue batches.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { COMPATIBILITY_DATE } from '../../../adapters/cloudflare/deploy.js';
import { outputSettled, targetContract, type TargetFunction, type TargetHost } from '../../contracts/target.js';
import { withTimeout } from '../../helpers.js';
import { playScript, type SocketLike } from '../../contracts/socket-script.js';
import { body, buildWorker, sendBatch, tempDir } from './worker.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

async function startWorkers(functions: readonly TargetFunction[]): Promise<TargetHost> {
  const dirs: { remove(): void }[] = [];
  const workers = new Map<string, Miniflare>();
  const outputs = new Map<string, string>();
  const close = async () => {
    await Promise.allSettled([...workers.values()].map((mf) => mf.dispose()));
    for (const dir of dirs) dir.remove();
  };
  // Settled, not raced: a failure closes only once every start has finished.
  const started = await Promise.allSettled(
    functions.map(async ({ name, entry }) => {
      const { dir, remove } = tempDir();
      dirs.push({ remove });
      const built = await buildWorker(join(root, entry), dir);
      const files = [built.file, ...built.artifacts.map((a) => a.file)];
      const modules = files.map((path) => ({ type: 'ESModule' as const, path }));
      outputs.set(name, '');
      // What the Worker writes with console.* comes out of workerd's stdout and stderr.
      const handleRuntimeStdio = (...streams: NodeJS.ReadableStream[]) => {
        for (const stream of streams) {
          stream.setEncoding('utf8').on('data', (text: string) => outputs.set(name, `${outputs.get(name)}${text}`));
        }
      };
      const options = { modules, modulesRoot: dir, compatibilityDate: COMPATIBILITY_DATE, handleRuntimeStdio };
      const mf = new Miniflare({ ...options, host: '127.0.0.1', port: 0 });
      workers.set(name, mf);
      await withTimeout(mf.ready, 30_000, `workerd for ${name}`);
    }),
  );
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await close();
    throw failed.reason;
  }
  const of = (fn: string): Miniflare => {
    const mf = workers.get(fn);
    if (!mf) throw new Error(`no Worker ${fn}`);
    return mf;
  };
  let sent = 0;
  return {
    async fetch(fn, path, init) {
      const request = new Request(`https://${fn}.example.workers.dev${path}`, init);
      // A streamed body (a request stream) goes on as it is made; any other as its bytes.
      const streamed = init?.body instanceof ReadableStream;
      const bytes = streamed ? request.body! : request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
      const { method, headers } = request;
      const sent = { method, headers: [...headers], body: bytes && body(bytes), duplex: 'half' };
      const res = await of(fn).dispatchFetch(request.url, sent as Parameters<Miniflare['dispatchFetch']>[1]);
      // miniflare's Response is undici's: handed on as the Web one the suite reads, its body read as it comes.
      const stream = res.body as ReadableStream<Uint8Array> | null;
      return new Response(stream, { status: res.status, headers: [...res.headers] });
    },
    async socket(fn, path, script) {
      const url = `https://${fn}.example.workers.dev${path}`;
      const res = await of(fn).dispatchFetch(url, { headers: { upgrade: 'websocket' } });
      if (!res.webSocket) return { refused: { status: res.status, body: await res.text() }, frames: [], code: 0 };
      res.webSocket.accept();
      return playScript(res.webSocket as unknown as SocketLike, script);
    },
    async ready(fn) {
      await withTimeout(of(fn).ready, 15_000, `workerd for ${fn}`);
      await outputSettled(async () => outputs.get(fn) ?? '');
    },
    output: async (fn) => outputs.get(fn) ?? '',
    messages: {
      // message.retry() hands it back to the queue, which delivers it again later (then to its dead-letter queue).
      attempts: 1,
      async deliver(fn, topic, payload) {
        const id = `contract-${++sent}`;
        // A queue feeds the subscriber named like it, dots as dashes (createWorker).
        const message = { id, timestamp: new Date(), body: payload, attempts: 1 };
        const result = await sendBatch(of(fn), topic.replaceAll('.', '-'), [message]);
        if (result.explicitAcks.includes(id)) return { acked: true };
        if (result.retryMessages.some((m) => m.msgId === id)) return { acked: false, attempts: 1 };
        throw new Error(`message ${id} was neither acked nor retried: ${JSON.stringify(result)}`);
      },
    },
    close,
  };
}

// workerd ends a Response body that errors with the chunked terminator, as if it had ended: seen on the wire.
const ndjsonErrorLooksClean = 'workerd closes an errored Response body with the chunked terminator';
targetContract('Cloudflare Workers (workerd)', startWorkers, { streams: { ndjsonErrorLooksClean } }).run();
