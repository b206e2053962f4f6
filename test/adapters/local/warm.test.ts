/**
 * A warm function process (adapters/local/handler.ts) warms up on its ping so that nothing on the way to the
 * handler runs for the first time in the invocation: V8 compiles a function at its first call, which costs
 * ~0.1-0.5 ms on a process that sat idle. V8's own function-event log of a real process tells what ran first.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLocal } from '../../../adapters/local/build.js';
import {
  IPC_ENV,
  encodeMessage,
  readMessages,
  type FromFunction,
  type IpcInvoke,
} from '../../../adapters/local/ipc.js';
import { sleep, withTimeout } from '../../helpers.js';

const warm = suite('warm function process');
const IDLE = 400;

warm('after its warm-up, the first function an invocation runs for the first time is the handler', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-warm-'));
  const log = join(dir, 'v8.log');
  const { file } = await buildLocal(join(process.cwd(), 'examples', 'helloworld', 'index.ts'), { outdir: dir });
  const child = spawn(
    process.execPath,
    ['--log-function-events', `--logfile=${log}`, '--no-logfile-per-isolate', file],
    {
      env: { [IPC_ENV]: '1', MICRO_FN_HOME: dir },
      stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
    },
  );
  try {
    const channel = child.stdio[3] as Readable & Writable;
    const waiters: ((m: FromFunction) => void)[] = [];
    readMessages<FromFunction>(channel, (m) => waiters.shift()?.(m));
    const next = () =>
      withTimeout(new Promise<FromFunction>((r) => waiters.push(r)), 10_000, 'a message from the function process');
    assert.is((await next()).type, 'ready');
    channel.write(encodeMessage({ type: 'ping' }));
    assert.is((await next()).type, 'pong');
    // Idle, as a warm process waits: its log then shows a gap that sets the invocation's events apart.
    await sleep(IDLE);
    const invoke: IpcInvoke = {
      type: 'invoke',
      id: 'w1',
      endpoint: 'Greeter.Hello',
      contentType: 'application/json',
      body: '{"name":"Ada"}',
      metadata: {},
    };
    channel.write(encodeMessage(invoke));
    const reply = await next();
    assert.equal(reply.type === 'reply' && [reply.status, reply.body], [200, '{"message":"Hello Ada"}']);
    await withTimeout(new Promise((r) => child.once('close', r)), 10_000, 'the function process to exit');

    // Lines `function,<event>,<script>,<start>,<end>,<ms>,<timestamp µs>,<name>`. The invocation's events are
    // those after the idle wait: the last gap that long before the handler's first run.
    const events = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('function,'))
      .map((l) => l.split(','))
      .map((f) => ({ event: f[1], time: Number(f[6]), name: f.slice(7).join(',') }));
    const handler = events.findIndex((e) => e.event === 'first-execution' && e.name === 'Hello');
    assert.ok(handler > 0, 'V8 logged the handler running');
    let at = handler;
    while (at > 0 && events[at]!.time - events[at - 1]!.time < IDLE * 1000 * 0.8) at--;
    assert.ok(at > 0, 'the idle wait shows in the log');
    const firsts = events
      .slice(at, handler + 1)
      .filter((e) => e.event === 'first-execution')
      .map((e) => e.name);
    assert.equal(firsts, ['Hello'], `ran for the first time before the handler: ${firsts.slice(0, -1).join(', ')}`);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

warm.run();
