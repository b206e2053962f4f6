/**
 * The registry entries of the local Lambda API's functions, kept alive only while serve can answer for them.
 *
 * `micro-fn deploy --target lambda --endpoint <serve>` registers a function at `lambda://REGION/NAME:ALIAS`, its node
 * naming the endpoint (`lambda-endpoint`), without a TTL: on AWS nothing would refresh it, and AWS keeps answering.
 * Here serve is the host, so serve takes those entries over: every entry whose endpoint is this serve and whose
 * function it has is marked as its own (`lambda-host`: the serve's identity, the same across restarts at its address)
 * and registered again with serve's TTL, refreshed at half of it, so it lapses when serve dies; an entry of its own
 * whose function it no longer has is removed. Entries another serve marked are left to it (a registry shared with
 * other machines may hold another serve at the same loopback address). serve records its entries with their function
 * (record.ts), removes them when it stops, and the next serve at its address registers them again as it restores.
 */
import type { NodeRecord, Registry, ServiceRecord } from '../../runtime/core/registry.js';
import { isLoopbackHost } from '../../runtime/core/loopback.js';
import { LAMBDA_ENDPOINT_METADATA, parseLambdaAddress } from '../../runtime/plugins/lambda/address.js';
import type { Functions } from './functions.js';

/** Node metadata: the serve whose Lambda API answers for the function (its identity, Host.id). */
export const LAMBDA_HOST_METADATA = 'lambda-host';

export interface LambdaEntriesOptions {
  registry: Registry;
  /** This serve's identity, marked on the entries it keeps. */
  id(): string;
  /** Seconds an entry lives without a refresh; refreshed at half of it. */
  ttl: number;
  /** The gateway's address, where the API answers (`http://127.0.0.1:52980`). */
  address(): string;
  /** The API's functions, once its code is loaded (none before: then no function is here). */
  functions(): Functions | undefined;
  say(line: string): void;
}

/**
 * @example
 * const entries = new LambdaEntries({ registry, ttl: 60, address: () => gateway, functions: () => api?.functions, say: console.error });
 * await entries.start(); // until stop(), which removes them
 */
export class LambdaEntries {
  readonly #options: LambdaEntriesOptions;
  readonly #stop = new AbortController();
  #timer: ReturnType<typeof setInterval> | undefined;
  #watching: Promise<void> | undefined;
  /** The reconciliation running, and whether another was asked for meanwhile (forced: refresh every entry). */
  #running: Promise<void> | undefined;
  #again: 'no' | 'changes' | 'all' = 'no';
  /** When each entry (by its content) was last registered here: a registry event it caused is not answered again. */
  readonly #registered = new Map<string, number>();

  constructor(options: LambdaEntriesOptions) {
    this.#options = options;
  }

  /** Registers the recorded entries again, takes over or removes those naming this serve, then keeps them fresh. */
  async start(): Promise<void> {
    await this.#putBack();
    await this.reconcile();
    this.#timer = setInterval(() => void this.reconcile(), (this.#options.ttl * 1000) / 2);
    this.#timer.unref?.();
    this.#watching = this.#watch();
  }

  /** Removes the entries of serve's functions from the registry: serve is going, so they cannot be called. */
  async stop(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#timer);
    await this.#watching;
    await this.#running;
    const fns = this.#options.functions();
    const entries = fns?.names().flatMap((name) => fns.entries(name)) ?? [];
    await Promise.allSettled(entries.map((entry) => this.#options.registry.deregister(entry)));
  }

  /** Function `name` was deleted: its entries go now. */
  deleted(entries: readonly ServiceRecord[]): void {
    void Promise.allSettled(entries.map((entry) => this.#options.registry.deregister(entry))).then(() =>
      this.reconcile(),
    );
  }

  /**
   * One pass over the registry: each entry naming this serve is registered again with the TTL when its function
   * (and qualifier) is here, and removed when not; what each function has is recorded. Passes never overlap.
   * `all` false (a registry event): an entry registered here within half the TTL, unchanged, is left as it is, so a
   * registry that reports every write (NATS KV) does not start a pass with each of serve's own refreshes.
   */
  reconcile(all = true): Promise<void> {
    if (this.#running) {
      if (all || this.#again === 'no') this.#again = all ? 'all' : 'changes';
      return this.#running;
    }
    this.#running = (async () => {
      let every = all;
      for (;;) {
        await this.#pass(every).catch((err: Error) =>
          this.#options.say(`refreshing Lambda entries failed: ${err.message}`),
        );
        if (this.#again === 'no' || this.#stop.signal.aborted) break;
        every = this.#again === 'all';
        this.#again = 'no';
      }
    })().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #pass(all: boolean): Promise<void> {
    const { registry, ttl } = this.#options;
    const fns = this.#options.functions();
    const found = new Map<string, ServiceRecord[]>();
    if (all) this.#registered.clear(); // forgets entries that have gone
    const id = this.#options.id();
    for (const service of await registry.listServices()) {
      for (const node of service.nodes) {
        if (!this.#namesThisServe(node)) continue;
        const host = node.metadata[LAMBDA_HOST_METADATA];
        if (host !== undefined && host !== id) continue; // another serve's
        const target = parseLambdaAddress(node.address);
        if (target && fns?.has(target.name, target.qualifier)) {
          const entry = this.#own({ ...service, nodes: [node] });
          found.set(target.name, [...(found.get(target.name) ?? []), entry]);
          const key = JSON.stringify(entry);
          if (!all && host === id && Date.now() - (this.#registered.get(key) ?? 0) < (ttl * 1000) / 2) continue;
          await registry.register(entry, { ttl });
          this.#registered.set(key, Date.now());
        } else if (host === id) {
          await registry.deregister({ ...service, nodes: [node] });
          this.#options.say(
            `removed the registry entry of ${service.name} at ${node.address}: serve's Lambda API has no such function`,
          );
        }
        // An entry not marked and not here: another serve at this address (on another machine) may have it.
      }
    }
    for (const name of fns?.names() ?? []) await fns!.setEntries(name, found.get(name) ?? []);
  }

  /** The entries recorded with each function, registered again: the serve that recorded them has gone. */
  async #putBack(): Promise<void> {
    const fns = this.#options.functions();
    for (const name of fns?.names() ?? []) {
      for (const entry of fns!.entries(name)) {
        await this.#options.registry.register(this.#own(entry), { ttl: this.#options.ttl }).catch((err: Error) => {
          this.#options.say(`registering ${entry.name} again failed: ${err.message}`);
        });
      }
    }
  }

  /** `entry` as this serve keeps it: its endpoint this serve's gateway, marked with this serve's identity. */
  #own(entry: ServiceRecord): ServiceRecord {
    const mark = { [LAMBDA_ENDPOINT_METADATA]: this.#options.address(), [LAMBDA_HOST_METADATA]: this.#options.id() };
    return { ...entry, nodes: entry.nodes.map((n) => ({ ...n, metadata: { ...n.metadata, ...mark } })) };
  }

  async #watch(): Promise<void> {
    try {
      for await (const event of this.#options.registry.watch({ signal: this.#stop.signal }))
        if (event.service.nodes.some((n) => this.#namesThisServe(n))) void this.reconcile(false);
    } catch (err) {
      if (!this.#stop.signal.aborted)
        this.#options.say(`serve stopped following the registry for Lambda entries: ${(err as Error).message}`);
    }
  }

  /** A `lambda://` node whose endpoint is this serve's gateway (the same port on a loopback or the same host). */
  #namesThisServe(node: NodeRecord): boolean {
    const endpoint = node.metadata[LAMBDA_ENDPOINT_METADATA];
    if (!endpoint || !node.address.startsWith('lambda://')) return false;
    try {
      const there = new URL(endpoint);
      const here = new URL(this.#options.address());
      if (there.port !== here.port || there.protocol !== here.protocol) return false;
      return there.hostname === here.hostname || (isLoopbackHost(there.hostname) && isLoopbackHost(here.hostname));
    } catch {
      return false;
    }
  }
}
