/**
 * The nodes a client found unreachable (a refused connection, no responders): their registry entries outlive
 * them until their TTL runs out, and a caller that kept choosing them would pay a failed attempt each time.
 */

/** How many node ids are remembered at most; past it the oldest are forgotten first. */
const MAX_NODES = 4096;

/**
 * Node ids with the time until which each is skipped. Shared by a client and the clients made from it, never by
 * two clients made separately.
 */
export class UnreachableNodes {
  /** Node id to the epoch ms until which it is skipped; in insertion order, so the first entries are the oldest. */
  readonly #until = new Map<string, number>();
  readonly #ms: number;

  /** `ms`: how long a node is skipped once it was found unreachable. */
  constructor(ms: number) {
    this.#ms = ms;
  }

  /** Remembers `id` as unreachable from `now` on. */
  add(id: string, now = Date.now()): void {
    if (this.#ms <= 0) return;
    this.#until.delete(id); // to the end: the newest
    this.#until.set(id, now + this.#ms);
    if (this.#until.size > MAX_NODES) {
      for (const [key, until] of this.#until) {
        if (this.#until.size <= MAX_NODES && until > now) break;
        this.#until.delete(key);
      }
    }
  }

  /** Whether `id` is still being skipped. */
  has(id: string, now = Date.now()): boolean {
    const until = this.#until.get(id);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#until.delete(id);
    return false;
  }

  /** Forgets `id`: it answered after all. */
  delete(id: string): void {
    this.#until.delete(id);
  }

  get size(): number {
    return this.#until.size;
  }
}
