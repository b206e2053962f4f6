/**
 * lock: each invocation takes a lock, reads a ledger from the store, works a while and writes it back. The lock keeps
 * two instances from working on the same value at once, so they queue instead of failing; the write is still a
 * compare-and-set on the revision read (the store's fence), so a holder that lost its lock (stalled past its TTL)
 * cannot undo the next one's work: it gets a 409 instead. The ledger records the fencing token of each write.
 *
 *   npx micro-fn serve &
 *   npx micro-fn deploy examples/lock
 *   npx micro-fn call lock Ledger.Add '{"hold":100}'        # {"value":1,"token":...}
 *   npx micro-fn store get lock ledger                       # {"value":1,"token":...}
 */
import { defineFunction, errors, type Context } from 'micro-fn';

interface AddRequest {
  /** Milliseconds to work while holding the lock (default 0, at most 5000). */
  hold?: unknown;
}

interface Ledger {
  value: number;
  /** The fencing token of the write. */
  token: number;
}

class LedgerHandler {
  async Add(req: AddRequest, ctx: Context) {
    const hold = req?.hold ?? 0;
    if (typeof hold !== 'number' || !(hold >= 0 && hold <= 5000))
      throw errors.badRequest(ctx.service, 'hold must be a number of milliseconds from 0 to 5000');
    // `await using lease = ...` does the same (TypeScript 5.2+ with @types/node or the esnext.disposable lib).
    const lease = await ctx.sync.lock('ledger', { ttl: 5000 });
    try {
      const read = await ctx.store.get<Ledger>('ledger');
      const ledger = read?.value ?? { value: 0, token: 0 };
      if (hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
      if (!lease.held) throw errors.conflict(ctx.service, `lock lost (token ${lease.token}) before writing: try again`);
      const next: Ledger = { value: ledger.value + 1, token: lease.token };
      // Only if nobody wrote since the read: with the lock held, never lost (a lost lock's write is refused).
      await ctx.store.set('ledger', next, { revision: read?.revision ?? 0 });
      return next;
    } finally {
      await lease.release();
    }
  }
}

export default defineFunction({
  name: 'lock',
  handlers: { Ledger: new LedgerHandler() },
});
