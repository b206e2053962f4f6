/**
 * The function side of store operations on the pipe (adapters/local/pipe-store.ts, IpcStoreCall): a real process of
 * examples/counter's bundle, started as serve starts it, with this test answering on its pipe as serve would; and
 * PipeStore's own rules (its answers by id, its timeout, its cap on operations in flight).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLocal } from '../../../adapters/local/build.js';
import {
  IPC_ENV,
  STORE_IN_FLIGHT,
  encodeMessage,
  readMessages,
  type FromFunction,
  type IpcStoreCall,
} from '../../../adapters/local/ipc.js';
import { PipeStore } from '../../../adapters/local/pipe-store.js';
import { conflict, isConflict } from '../../../runtime/core/store.js';
import { STORE_PIPE_ENV } from '../../../runtime/plugins/local/store-pipe.js';
import { rejects, withTimeout } from '../../helpers.js';

/** examples/counter's bundle in a process of its own, as serve starts it; `pipe`: offered the store on its pipe. */
async function counterProcess(dir: string, pipe: boolean) {
  const { file } = await buildLocal(join(process.cwd(), 'examples', 'counter', 'index.ts'), { outdir: dir });
  const child = spawn(process.execPath, [file], {
    // No serve runs for this home: a store operation over HTTP can only fail (503, none running).
    env: { [IPC_ENV]: '1', MICRO_FN_HOME: dir, ...(pipe ? { [STORE_PIPE_ENV]: '1' } : {}) },
    stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
  });
  const channel = child.stdio[3] as Readable & Writable;
  const waiters: ((m: FromFunction) => void)[] = [];
  readMessages<FromFunction>(channel, (m) => waiters.shift()?.(m));
  const next = () =>
    withTimeout(new Promise<FromFunction>((r) => waiters.push(r)), 10_000, 'a message from the function process');
  const closed = new Promise((r) => child.once('close', r));
  /** Waits for it to be ready, then hands it its invocation: Counter.Increment. */
  const increment = async () => {
    assert.is((await next()).type, 'ready');
    channel.write(
      encodeMessage({
        type: 'invoke',
        id: 'i1',
        endpoint: 'Counter.Increment',
        contentType: 'application/json',
        body: '{}',
        metadata: {},
      }),
    );
  };
  return { child, channel, next, closed, increment };
}

// ---
const process_ = suite('a function process: its store on the pipe');

process_(
  'Counter.Increment reads and compare-and-sets on the pipe, retrying a conflict: 2 gets, 2 sets, no HTTP',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'micro-fn-pipe-store-'));
    const p = await counterProcess(dir, true);
    try {
      await p.increment();
      const calls: IpcStoreCall[] = [];
      const store = async () => {
        const m = await p.next();
        assert.is(m.type, 'store', JSON.stringify(m));
        calls.push(m as IpcStoreCall);
        return m as IpcStoreCall;
      };
      const answer = (call: IpcStoreCall, reply: object) =>
        p.channel.write(`${JSON.stringify({ type: 'store-reply', id: call.id, ...reply })}\n`);

      let call = await store();
      answer(call, { response: { entry: { value: '41', revision: 7 } } });
      call = await store();
      answer(call, { error: conflict('counter', 'count', 7, 8).toJSON() });
      call = await store();
      answer(call, { response: { entry: { value: '50', revision: 9 } } });
      call = await store();
      answer(call, { response: { revision: 10 } });
      const reply = await p.next();
      assert.equal(reply.type === 'reply' && [reply.status, JSON.parse(reply.body)], [
        200,
        { value: 51, conflicts: 1 },
      ]);
      assert.equal(
        calls.map((c) => [c.endpoint, c.request]),
        [
          ['Store.Get', { namespace: 'counter', key: 'count' }],
          ['Store.Set', { namespace: 'counter', key: 'count', value: '42', revision: 7 }],
          ['Store.Get', { namespace: 'counter', key: 'count' }],
          ['Store.Set', { namespace: 'counter', key: 'count', value: '51', revision: 9 }],
        ],
      );
      assert.is(new Set(calls.map((c) => c.id)).size, 4, 'each call its own id');
      await withTimeout(p.closed, 10_000, 'the process to exit');
    } finally {
      p.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

process_('not offered the pipe (an older serve), it sends nothing there: its store call fails over HTTP', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-pipe-store-'));
  const p = await counterProcess(dir, false);
  try {
    await p.increment();
    const reply = await p.next();
    assert.is(reply.type, 'reply', 'no store message on the pipe');
    assert.ok(
      reply.type === 'reply' && reply.status === 503 && /micro-fn serve/.test(reply.body),
      JSON.stringify(reply),
    );
  } finally {
    p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

process_.run();

// ---
const pipeStore = suite('PipeStore');

pipeStore('answers by id in any order; an error comes back as the MicroError it was (a conflict)', async () => {
  const sent: IpcStoreCall[] = [];
  const store = new PipeStore(async (m) => void sent.push(m));
  const a = store.call('Store.Get', { namespace: 'n', key: 'a' });
  const b = store.call('Store.Set', { namespace: 'n', key: 'b', value: '1', revision: 3 });
  assert.is(sent.length, 2);
  store.receive({ type: 'store-reply', id: sent[1]!.id, error: conflict('n', 'b', 3, 4).toJSON() });
  store.receive({ type: 'store-reply', id: sent[0]!.id, response: { entry: null } });
  assert.equal(await a, { entry: null });
  assert.ok(isConflict(await rejects(() => b)));
});

pipeStore('no answer in time: a 504, not retryable; a late answer is dropped', async () => {
  const sent: IpcStoreCall[] = [];
  const store = new PipeStore(async (m) => void sent.push(m), 50);
  const err = (await rejects(() => store.call('Store.Set', { namespace: 'n', key: 'k', value: '1' }))) as {
    code: number;
    retryable: boolean;
  };
  assert.equal([err.code, err.retryable], [504, false]);
  store.receive({ type: 'store-reply', id: sent[0]!.id, response: { revision: 1 } }); // nothing to settle: no throw
});

pipeStore(`at most ${STORE_IN_FLIGHT} in flight: the rest are sent as answers come, in order`, async () => {
  const sent: IpcStoreCall[] = [];
  const store = new PipeStore(async (m) => void sent.push(m));
  const calls = Array.from({ length: STORE_IN_FLIGHT + 6 }, (_, i) =>
    store.call('Store.Get', { namespace: 'n', key: `k${i}` }),
  );
  assert.is(sent.length, STORE_IN_FLIGHT);
  for (let i = 0; i < 6; i++) store.receive({ type: 'store-reply', id: sent[i]!.id, response: { entry: null } });
  assert.is(sent.length, STORE_IN_FLIGHT + 6);
  assert.equal(
    sent.slice(STORE_IN_FLIGHT).map((m) => (m.request as { key: string }).key),
    ['k64', 'k65', 'k66', 'k67', 'k68', 'k69'],
  );
  for (const m of sent.slice(6)) store.receive({ type: 'store-reply', id: m.id, response: { entry: null } });
  assert.is((await Promise.all(calls)).length, STORE_IN_FLIGHT + 6);
});

pipeStore('a pipe that is gone: a 503 at once', async () => {
  const store = new PipeStore(async () => Promise.reject(new Error('EPIPE')));
  const err = (await rejects(() => store.call('Store.Get', { namespace: 'n', key: 'k' }))) as { code: number };
  assert.is(err.code, 503);
});

pipeStore.run();
