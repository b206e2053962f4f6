/**
 * stream: the three kinds of stream, each one invocation.
 *
 *   npx micro-fn run examples/stream            # listening on http://127.0.0.1:PORT
 *   curl -N -d '{"from":3}' http://127.0.0.1:PORT/stream/Countdown.Count
 *   {"n":3}
 *   {"n":2}
 *   {"n":1}
 *
 * - Countdown.Count: a server stream (an async generator), one value every `delay` ms (default 200).
 * - Numbers.Sum: a client stream: reads numbers, answers their sum.
 * - Chat.Echo: bidi: echoes each message as it comes.
 */
import { defineFunction, errors, type Context } from 'micro-fn';

class Countdown {
  async *Count(req: { from?: unknown; delay?: unknown }, ctx: Context): AsyncGenerator<{ n: number }> {
    const from = typeof req.from === 'number' ? req.from : 3;
    const delay = typeof req.delay === 'number' ? req.delay : 200;
    if (!Number.isInteger(from) || from < 0) throw errors.badRequest(ctx.service, 'from must be a whole number');
    // Sent before the first item, with it (as headers).
    ctx.responseMetadata.set('x-countdown-from', String(from));
    for (let n = from; n > 0; n--) {
      yield { n };
      if (n > 1) await sleep(delay, ctx.signal);
    }
    // Sent after the last item (HTTP trailers, SSE's end event).
    ctx.trailers.set('x-countdown', 'done');
  }
}

class Numbers {
  async Sum(numbers: AsyncIterable<unknown>, ctx: Context): Promise<{ sum: number; count: number }> {
    let sum = 0;
    let count = 0;
    for await (const n of numbers) {
      if (typeof n !== 'number') throw errors.badRequest(ctx.service, `message ${count + 1} is not a number`);
      sum += n;
      count++;
    }
    return { sum, count };
  }
}

class Chat {
  async *Echo(inbox: AsyncIterable<unknown>): AsyncGenerator<{ echo: unknown }> {
    for await (const message of inbox) yield { echo: message };
  }
}

/**
 * Waits `ms` (not at all at 0), or less when the stream is cancelled (the signal fires). Its listener goes with it: a
 * long stream adds no listener per item.
 */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export default defineFunction({
  name: 'stream',
  handlers: { Countdown: new Countdown(), Numbers: new Numbers(), Chat: new Chat() },
  // Count streams by itself (an async generator); Sum and Echo read a request stream: declared here.
  streams: { 'Numbers.Sum': 'client', 'Chat.Echo': 'bidi' },
});
