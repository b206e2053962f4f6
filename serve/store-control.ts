/**
 * The `Store.*` endpoints of serve's control service: the local key-value store (serve/store/kv.ts) for the local
 * store plugin (runtime/plugins/local/store.ts) of every process on this machine. They take serve's control token
 * (the CLI, `micro-fn invoke`, any process of serve's user) or the store token serve gives the functions it runs
 * (MICRO_FN_STORE_TOKEN): a function process runs as another user, cannot read the credential and must not open
 * LMDB itself. The store token opens the store and nothing else. Namespaces separate functions by default; they are
 * not a boundary between the functions of one serve (any may open another's namespace by name, as go-micro's
 * store databases were).
 */
import { timingSafeEqual } from 'node:crypto';
import { errors } from '../runtime/core/errors.js';
import type { Metadata } from '../runtime/core/metadata.js';
import { MAX_LIST_LIMIT, MAX_VALUE_BYTES, STORE_ERROR, checkKey, checkNamespace } from '../runtime/core/store.js';
import { RUNTIME_SERVICE } from '../runtime/plugins/local/protocol.js';
import { openKvStore, type KvStore } from './store/kv.js';

const STORE_GROUP = 'Store.';

export class StoreHost {
  /** What serve's functions send (MICRO_FN_STORE_TOKEN); new with every serve, so it dies with it. */
  readonly token = Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
  readonly #home: string;
  #kv: Promise<KvStore> | undefined;
  /** The Store group's handlers, made at the first operation sent on a pipe (run). */
  #handlers: ReturnType<StoreHost['handlers']> | undefined;

  constructor(home: string) {
    this.#home = home;
  }

  /** Whether `endpoint` is a store endpoint and `metadata` carries the store token. */
  admits(endpoint: string, metadata: Metadata): boolean {
    if (!endpoint.startsWith(STORE_GROUP)) return false;
    const sent = metadata.get('authorization');
    if (!sent?.startsWith('Bearer ')) return false;
    const a = Buffer.from(sent.slice(7));
    const b = Buffer.from(this.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** The store, opened on first use (serve's start does not wait for it). */
  kv(): Promise<KvStore> {
    return (this.#kv ??= openKvStore(this.#home).catch((err: unknown) => {
      this.#kv = undefined;
      throw err;
    }));
  }

  /**
   * Runs store endpoint `endpoint` (`Store.Get`...) as the control service would for a caller with the store token:
   * for a function process that sends it on its pipe (serve/worker.ts).
   */
  run(endpoint: string, request: unknown): Promise<unknown> {
    const handlers = (this.#handlers ??= this.handlers());
    const method = endpoint.startsWith(STORE_GROUP) ? endpoint.slice(STORE_GROUP.length) : '';
    if (!Object.hasOwn(handlers, method))
      return Promise.reject(
        errors.notFound(RUNTIME_SERVICE, `there is no store operation ${JSON.stringify(endpoint).slice(0, 80)}`),
      );
    return handlers[method as keyof typeof handlers](request);
  }

  /** The handlers of the control service's `Store` group. */
  handlers() {
    return {
      Get: async (req: unknown) => {
        const r = request(req, 'Store.Get');
        return { entry: (await (await this.kv()).get(r.namespace, r.key)) ?? null };
      },
      Set: async (req: unknown) => {
        const r = request(req, 'Store.Set');
        const value = jsonText(r.value);
        const ttl = optionalInteger(r.ttl, 'ttl', 1);
        const revision = optionalInteger(r.revision, 'revision', 0);
        return { revision: await (await this.kv()).set(r.namespace, r.key, value, { ttl, revision }) };
      },
      Delete: async (req: unknown) => {
        const r = request(req, 'Store.Delete');
        const revision = optionalInteger(r.revision, 'revision', 1);
        return { deleted: await (await this.kv()).delete(r.namespace, r.key, { revision }) };
      },
      List: async (req: unknown) => {
        const r = object(req, 'Store.List');
        checkNamespace(r.namespace);
        const prefix = r.prefix === undefined || r.prefix === '' ? '' : r.prefix;
        if (prefix !== '') checkKey(prefix, 'prefix');
        const limit = optionalInteger(r.limit, 'limit', 1) ?? 100;
        if (limit > MAX_LIST_LIMIT) throw errors.badRequest(STORE_ERROR, `limit is at most ${MAX_LIST_LIMIT}`);
        const cursor = r.cursor === undefined || r.cursor === null ? undefined : r.cursor;
        if (cursor !== undefined) checkKey(cursor, 'cursor');
        return (await this.kv()).list(r.namespace, prefix as string, { limit, cursor });
      },
    };
  }

  async close(): Promise<void> {
    const kv = await this.#kv?.catch(() => undefined);
    this.#kv = undefined;
    await kv?.close();
  }
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw errors.badRequest(RUNTIME_SERVICE, `${what} takes a JSON object`);
  return value as Record<string, unknown>;
}

function request(value: unknown, what: string): Record<string, unknown> & { namespace: string; key: string } {
  const r = object(value, what);
  checkNamespace(r.namespace);
  checkKey(r.key);
  return r as Record<string, unknown> & { namespace: string; key: string };
}

/** A value as the client sends it: JSON text, checked (a reader must always be able to parse what it gets). */
function jsonText(value: unknown): string {
  if (typeof value !== 'string') throw errors.badRequest(STORE_ERROR, 'value must be JSON text (a string)');
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES)
    throw errors.payloadTooLarge(STORE_ERROR, `a store value is at most ${MAX_VALUE_BYTES} bytes of JSON`);
  try {
    JSON.parse(value);
  } catch {
    throw errors.badRequest(STORE_ERROR, 'value is not JSON text');
  }
  return value;
}

function optionalInteger(value: unknown, field: string, min: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw errors.badRequest(
      STORE_ERROR,
      `${field} must be a whole number of at least ${min}; got ${JSON.stringify(value)}`,
    );
  return value;
}
