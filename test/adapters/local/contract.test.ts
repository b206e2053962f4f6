/**
 * The target contract on the local target: a real `micro-fn serve` on 127.0.0.1, the functions deployed with the
 * real CLI (`micro-fn deploy --target local`), requests through serve's gateway, messages with `micro-fn publish`.
 */
import { readFile } from 'node:fs/promises';
import { deadLetterHeaders } from '../../../runtime/core/broker.js';
import type { DeadLetter } from '../../../runtime/plugins/local/protocol.js';
import { LogSink } from '../../../serve/logs.js';
import { cli, controlHeaders, start, tempHome } from '../../cli/helpers.js';
import { outputSettled, targetContract } from '../../contracts/target.js';
import type { Settlement, TargetFunction, TargetHost } from '../../contracts/target.js';
import { eventually, sleep, withTimeout } from '../../helpers.js';

/** Warm processes per function: the probe test looks for the one that waited through it. */
const POOL = 1;
/** serve's broker runs a failing message 5 times (the memory broker's maxAttempts), then dead-letters it. */
const ATTEMPTS = 5;
/**
 * serve tells a publisher nothing about its message. A dead letter says it failed; none once the whole redelivery
 * schedule could have run (5 runs, each in a process of its own, 20-160 ms apart: well under this) says it was acked.
 */
const SETTLE_MS = 3000;

/** A deployed function as serve's `Runtime.List` reports it (the part read here). */
interface Listed {
  name: string;
  stats: { warm: number; starting: number };
}

async function startServe(functions: readonly TargetFunction[]): Promise<TargetHost> {
  const scratch = tempHome();
  const env = { MICRO_FN_HOME: scratch.home };
  const serve = start(['serve', '--address', '127.0.0.1:0', '--quiet'], env);
  const close = async () => {
    serve.child.kill('SIGTERM');
    await serve.exited(10_000).catch(() => serve.kill());
    scratch.cleanup();
  };
  try {
    const [, gateway] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    const control = async (endpoint: string, req: unknown): Promise<unknown> => {
      const headers = { 'content-type': 'application/json', ...controlHeaders(scratch.home) };
      const init = { method: 'POST', body: JSON.stringify(req), headers };
      const res = await withTimeout(fetch(`${gateway}/micro-fn/${endpoint}`, init), 10_000, endpoint);
      if (!res.ok) throw new Error(`${endpoint} answered ${res.status}: ${await res.text()}`);
      return res.json();
    };
    const run = async (args: string[]) => {
      const r = await cli(args, env, { timeout: 60_000 });
      if (r.code !== 0) throw new Error(`micro-fn ${args.join(' ')} exited with ${r.code}: ${r.stderr}`);
    };
    await Promise.all(functions.map((f) => run(['deploy', f.entry, '--target', 'local', '--pool', String(POOL)])));
    const output = (fn: string) => readFile(LogSink.file(scratch.home, fn), 'utf8').catch(() => '');
    const deadLetters = async (topic: string) =>
      ((await control('Dlq.List', { topic })) as { messages: DeadLetter[] }).messages;
    return {
      // One gateway for every function: it routes by the path or the Micro-Service header, and answers GET /health
      // itself, so there the probe test shows that the warm process was left waiting for the next request.
      fetch: (_fn, path, init) => withTimeout(fetch(`${gateway}${path}`, init), 30_000, `serve: ${path}`),
      async ready(fn) {
        const warm = async () => {
          const { functions } = (await control('Runtime.List', {})) as { functions: Listed[] };
          const stats = functions.find((f) => f.name === fn)?.stats;
          return stats !== undefined && stats.warm >= POOL && stats.starting === 0;
        };
        await eventually(warm, 15_000, `a warm ${fn} process`, 50);
        await outputSettled(() => output(fn));
      },
      output,
      messages: {
        attempts: ATTEMPTS,
        // The broker hands the message to every function subscribed to its topic: `fn` is the only one here.
        async deliver(_fn, topic, payload): Promise<Settlement> {
          const before = (await deadLetters(topic)).length;
          await run(['publish', topic, JSON.stringify(payload)]);
          const end = Date.now() + SETTLE_MS;
          for (;;) {
            const letter = (await deadLetters(topic))[before];
            if (letter) {
              if (letter.body !== JSON.stringify(payload)) throw new Error(`an unexpected dead letter: ${letter.body}`);
              return { acked: false, attempts: Number(letter.headers[deadLetterHeaders.attempts]) };
            }
            if (Date.now() > end) return { acked: true };
            await sleep(50);
          }
        },
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

targetContract('local (micro-fn serve)', startServe).run();
