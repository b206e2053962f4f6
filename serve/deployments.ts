/**
 * What `micro-fn serve` keeps of its local functions so the next serve at its address runs them again: the Deploy
 * request of each (bundle, entry, declared environment, pool, concurrency, queue, timeout, memory), recorded by name
 * in its state folder (serve/state.ts) before a deploy is answered, removed before a removal is. At start, each
 * record is deployed again through the checks of a deploy; and the registry entries the serve before it at the same
 * address left when it crashed are removed first, so nobody meets two runtimes at one address. Which serve that was is
 * recorded too (`serve.json`: its registry node id), so a registry shared with other machines, where another serve may
 * register the same loopback address, never loses that one's entries.
 */
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMicroError } from '../runtime/core/errors.js';
import type { Registry } from '../runtime/core/registry.js';
import type { DeployRequest, FunctionInfo } from '../runtime/plugins/local/protocol.js';
import { RecordStore } from './state.js';
import { checkDeploy } from './validate.js';

/**
 * The records of one serve's local functions; with no state folder (serve on port 0) it keeps nothing.
 * @example
 * const records = new DeploymentRecords(stateFolder(home, '127.0.0.1:52980'), home, console.error);
 * await records.restore((request) => runtime.deploy(request)); // at start
 * await records.keep('helloworld', request); // after each deploy
 */
export class DeploymentRecords {
  readonly #store: RecordStore<DeployRequest> | undefined;
  /** Who ran at this address: `serve.json` in the state folder. */
  readonly #serve: RecordStore<ServeRecord> | undefined;
  readonly #home: string;
  readonly #say: (line: string) => void;
  /** Recorded functions that did not start again: kept for the next start, until removed. */
  readonly #unrestored = new Map<string, DeployRequest>();

  constructor(state: string | undefined, home: string, say: (line: string) => void) {
    this.#home = home;
    this.#say = say;
    if (state) {
      this.#store = new RecordStore(join(state, 'functions'), { parse: deployRecord, say });
      this.#serve = new RecordStore(state, { parse: serveRecord, say });
    }
  }

  /**
   * Makes this process (registry node id `node`) the serve at this address, once it has bound it: `replace` is given
   * the node id of the serve before it, whose entries are this one's to remove, and only then is `node` recorded, so a
   * crash in between leaves the earlier one to replace next time. Resolves with this serve's identity across restarts
   * (kept in the state folder; `node` when there is none).
   */
  async takeOver(node: string, replace: (previous: string) => Promise<void>): Promise<string> {
    if (!this.#serve) return node;
    const before = (await this.#serve.readAll()).find((r) => r.key === 'serve')?.value;
    if (before) await replace(before.node);
    const id = before?.id ?? randomUUID();
    await this.#serve.write('serve', { id, node }).catch((err: Error) => {
      this.#say(
        `cannot record this serve in its state folder (${err.message}): the next one will not replace its entries`,
      );
    });
    return id;
  }

  /** Whether functions are recorded: then their bundles stay when serve stops, for the next serve. */
  get kept(): boolean {
    return this.#store !== undefined;
  }

  /** Records function `name` as `request` deploys it; a failure is said, never thrown (the function runs). */
  async keep(name: string, request: DeployRequest): Promise<void> {
    if (!this.#store) return;
    this.#unrestored.delete(name);
    await this.#store.write(name, request).catch((err: Error) => {
      this.#say(
        `${name} is deployed, but its record could not be written (${err.message}): a restart of serve will not restore it`,
      );
    });
  }

  /** Removes the record of function `name`; a failure is said. */
  async forget(name: string): Promise<void> {
    await this.#store?.remove(name).catch((err: Error) => {
      this.#say(`the record of ${name} could not be removed (${err.message}): a restart of serve would restore it`);
    });
  }

  /** Forgets a recorded function that did not start again; resolves with its bundle, or undefined for none such. */
  async forgetUnrestored(name: string): Promise<string | undefined> {
    const left = this.#unrestored.get(name);
    if (!left) return undefined;
    this.#unrestored.delete(name);
    await this.forget(name);
    return left.bundle;
  }

  /**
   * Deploys each record again with `deploy`, a few at a time (each waits for its first process), after the checks of
   * a deploy (checkDeploy: the bundle where serve keeps bundles, the environment, every number's range). A function
   * whose bundle has gone is said and its record removed; one that fails to start is said and its record kept for
   * the next start (`micro-fn remove` forgets it).
   */
  async restore(deploy: (request: DeployRequest) => Promise<FunctionInfo>): Promise<void> {
    const records = (await this.#store?.readAll()) ?? [];
    let next = 0;
    const work = async (): Promise<void> => {
      for (let r = records[next++]; r; r = records[next++]) await this.#restoreOne(r.key, r.value, deploy);
    };
    await Promise.all([work(), work(), work(), work()]);
  }

  async #restoreOne(
    key: string,
    recorded: DeployRequest,
    deploy: (request: DeployRequest) => Promise<FunctionInfo>,
  ): Promise<void> {
    try {
      const info = await deploy(await checkDeploy(recorded, this.#home));
      if (info.name !== key) await this.forget(key);
      this.#say(`restored ${info.name} (${[...info.endpoints, ...info.topics.map((t) => `topic ${t}`)].join(', ')})`);
    } catch (err) {
      const detail = isMicroError(err) ? err.detail : (err as Error).message;
      if (!(await stat(recorded.bundle).catch(() => undefined))) {
        await this.forget(key);
        this.#say(`left out ${key}: ${detail}; its record is removed (deploy it again)`);
        return;
      }
      this.#unrestored.set(key, recorded);
      this.#say(
        `left out ${key}: ${detail}; its record is kept and tried again at the next start (\`micro-fn remove ${key}\` forgets it)`,
      );
    }
  }
}

/**
 * Removes the registry entries the serve with node id `node` left at `address` when it stopped without removing them
 * (it crashed): its `micro-fn` entry and its functions' (node ids `<name>-<node>`). Called by the serve that has just
 * bound the address after it. Resolves with the names of the services whose entries went.
 */
export async function removeLeftEntries(registry: Registry, address: string, node: string): Promise<string[]> {
  const names: string[] = [];
  for (const service of await registry.listServices().catch(() => [])) {
    const left = service.nodes.filter((n) => n.address === address && n.id.endsWith(`-${node}`));
    if (left.length === 0) continue;
    await registry.deregister({ ...service, nodes: left }).then(
      () => names.push(service.name),
      () => {},
    );
  }
  return names;
}

/** `serve.json`: the identity of the serve at an address across restarts, and the node id of the last one. */
interface ServeRecord {
  id: string;
  node: string;
}

function serveRecord(value: unknown): ServeRecord {
  const r = value as ServeRecord | null;
  if (typeof r?.id !== 'string' || typeof r.node !== 'string') throw new Error('it is not the record of a serve');
  return r;
}

/** A record as stored: a Deploy request, checked whole (checkDeploy) when it is restored. */
function deployRecord(value: unknown): DeployRequest {
  if (typeof value !== 'object' || value === null || typeof (value as DeployRequest).bundle !== 'string')
    throw new Error('it is not the record of a deployed function');
  return value as DeployRequest;
}
