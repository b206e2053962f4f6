/**
 * The sync contract (issue 17): locks with fencing tokens and leader election, go-micro's `sync`, built on a store's
 * compare-and-set and TTLs, so every store plugin that has them (memory, local, JetStream KV) is a sync plugin too.
 *
 * A lock is a key written with `revision: 0` (only if absent) and a TTL; whoever wrote it holds it. The holder renews
 * it by compare-and-set on the revision it last wrote, a third of the TTL apart, so it keeps the lock while it runs
 * and loses it at the TTL when it stops (a killed process renews nothing). Release deletes it on that revision, so a
 * holder that already lost the lock never deletes the next holder's. The fencing token is the revision the lock was
 * taken at: revisions are never reused, so each holder's token is greater than every earlier holder's of that key.
 *
 * A holder's own view is cautious: it counts the TTL from before it sent the write, so it stops calling itself the
 * holder (its `signal` fires) no later than the store lets the key expire. A holder that wrote to something else in
 * that window is what the fencing token is for: pass it along, and let the other side refuse a smaller one.
 */
import { MicroError, errors } from './errors.js';
import { newId } from './id.js';
import { checkKey, isConflict, type StoreBackend } from './store.js';

/** The id of the 409 a lock that stayed held past `wait` gets, and of the reason a lost lease's signal carries. */
export const SYNC_HELD = 'micro-fn.sync.held';
/** The id of the reason a lease's signal carries once it is lost (not renewed in time, or taken over). */
export const SYNC_LOST = 'micro-fn.sync.lost';
/** The id of every other sync error (400 bad key or option, 501 a store without compare-and-set). */
export const SYNC_ERROR = 'micro-fn.sync';

/** Milliseconds a lock or leadership lives unless renewed, by default. */
export const DEFAULT_SYNC_TTL = 10_000;
/** Milliseconds of TTL at least: the holder renews a third of it apart, and a renewal is a round trip to the store. */
export const MIN_SYNC_TTL = 300;
/** Characters of a sync namespace at most (the store namespace adds its prefix to it). */
export const MAX_SYNC_NAMESPACE_LENGTH = 100;
/** Milliseconds between two tries to take a held lock, at most (they start at 10 and double). */
const MAX_POLL = 250;

/** What a sync plugin opens: the store operations locks are made of. Its compare-and-set must be atomic. */
export type SyncBackend = Pick<StoreBackend, 'guarantees' | 'get' | 'set' | 'delete' | 'close'>;

export interface LockOptions {
  /** Milliseconds the lock lives unless renewed (default 10 000, at least 300). It is renewed while held. */
  ttl?: number;
  /**
   * Milliseconds to wait while another holds it; 0 tries once. Then a 409 SYNC_HELD. Default: as long as `signal`
   * allows (a handler's `ctx.sync` passes the invocation's signal, which fires at its deadline).
   */
  wait?: number;
  /** Stops the waiting (the call rejects with its reason). Default in a handler: the invocation's `ctx.signal`. */
  signal?: AbortSignal;
}

export interface LeaderOptions extends LockOptions {
  /** Called once if the leadership is lost rather than resigned: not renewed within its TTL, or taken over. */
  onLoss?: (reason: MicroError) => void;
}

/**
 * `[Symbol.asyncDispose]()`, so that `await using` type-checks, where the TypeScript lib knows the symbol
 * (esnext.disposable); nothing where it does not (this project's own lib). Every lease and term has the method at
 * run time wherever the platform has the symbol (Node 20+, Deno, workerd).
 */
export type AsyncDisposableWhereKnown = SymbolConstructor extends { readonly asyncDispose: infer S extends symbol }
  ? { [K in S]: () => Promise<void> }
  : unknown;

/**
 * A held lock. Renewed while held; `release()` (or `await using`) gives it up, and a holder that stops is given up at
 * the TTL.
 */
export type Lease = LeaseState & AsyncDisposableWhereKnown;

export interface LeaseState {
  /** The lock's key. */
  readonly key: string;
  /** The fencing token: greater than every earlier holder's of this key. Send it with what the lock protects. */
  readonly token: number;
  /** Fires when the lease ends: lost (reason SYNC_LOST) or released. Stop the protected work when it does. */
  readonly signal: AbortSignal;
  /** Whether this holder still holds it, as far as it can know (the store may not have expired it yet when false). */
  readonly held: boolean;
  /** Gives it up (deletes the lock unless another took it meanwhile). Once; later calls do nothing. */
  release(): Promise<void>;
}

/** A won election: a lease on the leadership of `name`; `await using` resigns it. */
export type Leadership = LeadershipState & AsyncDisposableWhereKnown;

export interface LeadershipState {
  readonly name: string;
  /** The fencing token of this term: greater than every earlier leader's of `name`. */
  readonly token: number;
  /** Fires when the term ends: lost (reason SYNC_LOST, and `onLoss` is called) or resigned. */
  readonly signal: AbortSignal;
  readonly held: boolean;
  /** Ends the term so another candidate can win at once; `onLoss` is not called. */
  resign(): Promise<void>;
}

/**
 * What a handler uses: `ctx.sync` locks within the function's own namespace (its service name); `namespace(name)`
 * shares locks between functions.
 * @example
 * // One instance at a time rebuilds the report; the token fences out a holder that was too slow.
 * async Rebuild(_req: unknown, ctx: Context) {
 *   await using lease = await ctx.sync.lock('report', { ttl: 5000 });
 *   await writeReport({ fence: lease.token, signal: lease.signal });
 *   return { token: lease.token };
 * }
 * @example
 * // A long-running service leads while it runs; another takes over within the TTL when it stops.
 * const term = await sync.leader('scheduler', { ttl: 3000, onLoss: () => stopScheduling() });
 */
export interface Sync {
  /** The namespace its locks and elections live in. */
  readonly name: string;
  /** Takes the lock `key`, waiting while another holds it (see LockOptions.wait). */
  lock(key: string, options?: LockOptions): Promise<Lease>;
  /** Stands in the election `name` and resolves once this caller leads (waiting as `lock` does). */
  leader(name: string, options?: LeaderOptions): Promise<Leadership>;
  /** The sync of namespace `name`, over the same plugin. */
  namespace(name: string): Sync;
}

/**
 * The Sync of `namespace` over the backend `open` gives (opened on the first lock, so a function that never locks
 * opens nothing). `signal` gives the default of LockOptions.signal (a handler's `ctx.signal`).
 */
export function createSync(
  open: () => Promise<SyncBackend>,
  namespace: string,
  signal?: () => AbortSignal | undefined,
): Sync {
  checkSyncNamespace(namespace);
  return new StoreSync(open, namespace, signal ?? (() => undefined));
}

class StoreSync implements Sync {
  readonly #open: () => Promise<SyncBackend>;
  readonly #signal: () => AbortSignal | undefined;

  constructor(
    open: () => Promise<SyncBackend>,
    readonly name: string,
    signal: () => AbortSignal | undefined,
  ) {
    this.#open = open;
    this.#signal = signal;
  }

  async lock(key: string, options: LockOptions = {}): Promise<Lease> {
    return (await this.#acquire('lock', key, options)) as unknown as Lease;
  }

  async leader(name: string, options: LeaderOptions = {}): Promise<Leadership> {
    const lease = await this.#acquire('leader', name, options);
    const term: LeadershipState = {
      name,
      token: lease.token,
      signal: lease.signal,
      get held() {
        return lease.held;
      },
      resign: () => lease.release(),
    };
    return disposable(term, () => lease.release()) as unknown as Leadership;
  }

  namespace(name: string): Sync {
    checkSyncNamespace(name);
    return new StoreSync(this.#open, name, this.#signal);
  }

  async #acquire(kind: 'lock' | 'leader', key: string, options: LeaderOptions): Promise<HeldLease> {
    checkKey(key, kind === 'lock' ? 'lock key' : 'leader name');
    const ttl = options.ttl ?? DEFAULT_SYNC_TTL;
    if (!(Number.isSafeInteger(ttl) && ttl >= MIN_SYNC_TTL))
      throw errors.badRequest(
        SYNC_ERROR,
        `ttl must be a whole number of milliseconds of at least ${MIN_SYNC_TTL}; got ${String(ttl)}`,
      );
    const wait = options.wait ?? Infinity;
    if (!(wait === Infinity || (Number.isSafeInteger(wait) && wait >= 0)))
      throw errors.badRequest(
        SYNC_ERROR,
        `wait must be a whole number of milliseconds (0: try once); got ${String(wait)}`,
      );
    const signal = options.signal ?? this.#signal();
    const backend = await this.#open();
    if (!backend.guarantees.compareAndSet || backend.guarantees.consistency !== 'strong')
      throw new MicroError(
        SYNC_ERROR,
        501,
        'locks need a strongly consistent store with compare-and-set: choose MICRO_SYNC=local (or memory in one process)',
      );
    const space = `micro-fn.${kind}/${this.name}`;
    const holder = newId();
    const value = JSON.stringify({ holder, ttl });
    const started = Date.now();
    for (let delay = 10; ; delay = Math.min(delay * 2, MAX_POLL)) {
      signal?.throwIfAborted();
      const sent = Date.now();
      try {
        const revision = await backend.set(space, key, value, { revision: 0, ttl });
        return new HeldLease({ backend, space, key, value, ttl, revision, sent, onLoss: options.onLoss });
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      const left = started + wait - Date.now();
      if (left <= 0)
        throw new MicroError(
          SYNC_HELD,
          409,
          `${kind === 'lock' ? 'the lock' : 'the leadership of'} ${key} is held by another${wait > 0 ? ` after waiting ${wait} ms` : ''}: try again later, or wait longer`,
          { retryable: false },
        );
      await sleep(Math.min(delay * (0.5 + Math.random() / 2), left), signal);
    }
  }
}

interface HeldOptions {
  backend: SyncBackend;
  space: string;
  key: string;
  value: string;
  ttl: number;
  /** The revision written. */
  revision: number;
  /** When (epoch ms) the write was sent: the store's TTL started no earlier. */
  sent: number;
  onLoss?: (reason: MicroError) => void;
}

class HeldLease implements LeaseState {
  readonly key: string;
  readonly token: number;
  readonly #o: HeldOptions;
  readonly #controller = new AbortController();
  /** The revision last written: what a renewal or the release compares with. */
  #revision: number;
  /** Epoch ms after which this holder no longer counts itself the holder. */
  #expires: number;
  #renewal: ReturnType<typeof setTimeout> | undefined;
  #expiry: ReturnType<typeof setTimeout> | undefined;
  /** The renewal under way, awaited by release so it deletes the latest revision. */
  #renewing: Promise<void> | undefined;
  #done = false;
  #released = false;

  constructor(options: HeldOptions) {
    this.#o = options;
    this.key = options.key;
    this.token = options.revision;
    this.#revision = options.revision;
    this.#expires = options.sent + options.ttl;
    disposable(this, () => this.release());
    this.#schedule();
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get held(): boolean {
    return !this.#done && Date.now() < this.#expires;
  }

  async release(): Promise<void> {
    if (this.#done) return;
    this.#released = true;
    this.#end();
    this.#controller.abort(new MicroError(SYNC_LOST, 409, `${this.key} was released`));
    await this.#renewing;
    try {
      await this.#o.backend.delete(this.#o.space, this.key, { revision: this.#revision });
    } catch (err) {
      if (!isConflict(err)) throw err; // a conflict: it had expired, and maybe another holds it now; leave theirs
    }
  }

  /** Renews a third of the TTL from the last write; gives up at the expiry. */
  #schedule(): void {
    const now = Date.now();
    clearTimeout(this.#expiry);
    this.#expiry = unref(setTimeout(() => this.#lose('it was not renewed within its TTL'), this.#expires - now));
    this.#renewal = unref(
      setTimeout(() => (this.#renewing = this.#renew()), Math.max(0, this.#o.ttl / 3 - (now - this.#o.sent))),
    );
  }

  async #renew(): Promise<void> {
    const { backend, space, key, value, ttl } = this.#o;
    for (let delay = ttl / 10; !this.#done; delay = Math.min(delay * 2, ttl / 4)) {
      const sent = Date.now();
      try {
        const revision = await backend.set(space, key, value, { revision: this.#revision, ttl });
        this.#revision = revision;
        // Released meanwhile: release deletes this revision. Lost meanwhile (our own clock gave up first): give it up.
        if (this.#done) {
          if (!this.#released) void backend.delete(space, key, { revision }).catch(() => {});
          return;
        }
        this.#expires = sent + ttl;
        this.#o.sent = sent;
        this.#schedule();
        return;
      } catch (err) {
        if (isConflict(err)) return this.#lose('another took it after it expired');
        // The store did not answer (serve restarting, say): try again until the expiry timer gives up.
        await sleep(Math.min(delay, Math.max(0, this.#expires - Date.now())));
      }
    }
  }

  #lose(why: string): void {
    if (this.#done) return;
    this.#end();
    const reason = new MicroError(SYNC_LOST, 409, `${this.key} was lost: ${why}`, { retryable: false });
    this.#controller.abort(reason);
    try {
      this.#o.onLoss?.(reason);
    } catch {
      // The callback's own failure is its business; the lease is over either way.
    }
  }

  #end(): void {
    this.#done = true;
    clearTimeout(this.#renewal);
    clearTimeout(this.#expiry);
  }
}

/** Throws a 400 unless `name` is a namespace sync takes. */
function checkSyncNamespace(name: unknown): asserts name is string {
  checkKey(name, 'sync namespace');
  if (name.length > MAX_SYNC_NAMESPACE_LENGTH)
    throw errors.badRequest(
      SYNC_ERROR,
      `a sync namespace is at most ${MAX_SYNC_NAMESPACE_LENGTH} characters; got ${name.length}`,
    );
}

/**
 * `target`, given up by `await using` (Symbol.asyncDispose: Node 20+, Deno, workerd; not in this project's TypeScript
 * lib, so it is added here rather than declared on the class, which also keeps the class free of side effects for
 * bundlers that drop it from functions that never lock).
 */
function disposable<T extends object>(target: T, dispose: () => Promise<void>): T {
  const key = (Symbol as { asyncDispose?: symbol }).asyncDispose;
  if (key) Object.defineProperty(target, key, { value: dispose });
  return target;
}

/** A timer that does not keep a process alive by itself (Node); elsewhere timers have no such notion. */
function unref<T>(timer: T): T {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
