/**
 * counter: each invocation increments a counter in the function's store by compare-and-set, retrying when another
 * instance wrote it first. However many one-shot instances run at once, none is lost and none counted twice.
 *
 *   npx micro-fn serve &
 *   npx micro-fn deploy examples/counter
 *   npx micro-fn call counter Counter.Increment '{}'        # {"value":1,"conflicts":0}
 *   npx micro-fn store get counter count                    # 1
 */
import { defineFunction, errors, isConflict, type Context } from 'micro-fn';

/** Attempts before giving up: each conflict means another instance's increment landed, so this is generous. */
const ATTEMPTS = 1000;

interface IncrementRequest {
  /** The counter's key (default `count`). */
  key?: unknown;
}

class Counter {
  async Increment(req: IncrementRequest, ctx: Context) {
    const key = req?.key === undefined ? 'count' : req.key;
    if (typeof key !== 'string') throw errors.badRequest(ctx.service, 'key must be a string');
    for (let conflicts = 0; conflicts < ATTEMPTS; conflicts++) {
      const current = await ctx.store.get<number>(key);
      const value = (current?.value ?? 0) + 1;
      try {
        // revision 0: only if still absent; otherwise only if nobody wrote it since we read it.
        await ctx.store.set(key, value, { revision: current?.revision ?? 0 });
        return { value, conflicts };
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    throw errors.unavailable(ctx.service, `${key} kept changing: ${ATTEMPTS} conflicts in a row`);
  }

  async Get(req: IncrementRequest, ctx: Context) {
    const key = typeof req?.key === 'string' ? req.key : 'count';
    return { value: (await ctx.store.get<number>(key))?.value ?? 0 };
  }
}

export default defineFunction({
  name: 'counter',
  handlers: { Counter: new Counter() },
});
