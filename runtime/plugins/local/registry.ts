import { link, mkdir, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Channel } from '../../core/channel.js';
import { ConfigError } from '../../core/config.js';
import { MicroError } from '../../core/errors.js';
import type { RegisterOptions, Registry, RegistryEvent, ServiceRecord, WatchOptions } from '../../core/registry.js';
import {
  copyNode,
  describeService,
  isExpiredEntry,
  mergeNodeEntries,
  parseNodeEntry,
  sameDescription,
  sameNode,
  toServiceRecord,
  type NodeEntry,
  type ServiceDescription,
} from '../../core/registry-records.js';
import { microFnHome } from './home.js';

export interface FileRegistryOptions {
  /** The state folder; node files go to `<home>/registry`. Default: `microFnHome(process.env)`. */
  home?: string;
  /** Milliseconds between two reads of a watch. Default 250. */
  pollInterval?: number;
}

/** The content of one node file; `registered` (epoch ms, fractional) picks the newest node's description. */
type NodeFile = NodeEntry;

interface Watch {
  channel: Channel<RegistryEvent>;
  service: string | undefined;
  last: Map<string, ServiceRecord>;
  /** Settles once the first snapshot is taken; register() waits for it, so a change made after watch() is an event. */
  ready: Promise<void>;
  timer?: ReturnType<typeof setTimeout>;
  polling: boolean;
  again: boolean;
}

// A temp file left by a crashed writer is removed once it is this old.
const STALE_TEMP_MS = 60_000;
const ignore = () => {};
const codeOf = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

/**
 * One path segment for any string: encodeURIComponent, plus what it leaves that a file system treats
 * specially ('.' and '..', hidden and Windows-stripped dots, '*', device names). '+' never appears in its
 * output, so it marks the empty string and hashed over-long names: distinct strings get distinct segments.
 */
function encodeSegment(value: string): string {
  if (value === '') return '+';
  const hex = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`;
  let s = encodeURIComponent(value)
    .replace(/\*/g, '%2A')
    .replace(/^\.|\.$/g, hex);
  if (/^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i.test(s)) s = hex(s[0]!) + s.slice(1);
  return s.length <= 200 ? s : `${s.slice(0, 120)}+${fnv1a(value, 0x811c9dc5)}${fnv1a(value, 0x050c5d1f)}`;
}

/**
 * FNV-1a, 32 bits as 8 hex digits. Two seeds make the folder name of a very long service name (no need for
 * node:crypto, whose loading costs a one-shot process milliseconds; reads still compare the stored name).
 */
function fnv1a(text: string, seed: number): string {
  let h = seed;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

const copy = (s: ServiceRecord): ServiceRecord => toServiceRecord(s, s.nodes);
const keyOf = (s: ServiceDescription) => JSON.stringify([s.name, s.version]);

/** A node file's content, or undefined for anything half-written, foreign or garbled. */
function parseNodeFile(text: string): NodeFile | undefined {
  try {
    return parseNodeEntry(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** One record per name+version: nodes sorted by id, description from the most recently registered node. */
const merge = (files: NodeFile[]): ServiceRecord[] => mergeNodeEntries(files, (f) => f.registered);

/** The events that turn snapshot `before` into `after`; a refresh that changes nothing is no event. */
function* diff(before: Map<string, ServiceRecord>, after: Map<string, ServiceRecord>): Generator<RegistryEvent> {
  for (const [key, now] of after) {
    const old = before.get(key);
    if (!old) {
      yield { type: 'create', service: copy(now) };
      continue;
    }
    const oldNodes = new Map(old.nodes.map((n) => [n.id, n]));
    const changed = now.nodes.filter((n) => !oldNodes.has(n.id) || !sameNode(oldNodes.get(n.id)!, n));
    if (changed.length > 0 || !sameDescription(old, now))
      yield { type: 'update', service: copy({ ...now, nodes: changed }) };
    const live = new Set(now.nodes.map((n) => n.id));
    const gone = old.nodes.filter((n) => !live.has(n.id));
    if (gone.length > 0) yield { type: 'delete', service: copy({ ...old, nodes: gone }) };
  }
  for (const [key, old] of before) if (!after.has(key)) yield { type: 'delete', service: copy(old) };
}

/** Entries of a folder; none when it is missing or unreadable. */
const list = (dir: string) => readdir(dir).catch((): string[] => []);
/** Removes a version folder and its service folder once they are empty; another writer may refill them first. */
const prune = async (versionDir: string) => {
  await rmdir(versionDir)
    .then(() => rmdir(dirname(versionDir)), ignore)
    .catch(ignore);
};

/**
 * The embedded default registry: one JSON file per node under `<home>/registry/<service>/<version>/`, shared
 * by every local process. Writers never read-modify-write a shared file (write a temp file, rename it over
 * the node's file), so readers never see a half-written node and concurrent processes never lose an update.
 * Readers skip garbled files and remove expired ones. A watch polls (`pollInterval`) and compares snapshots;
 * changes made through this instance wake it at once. Its timers are unref'd.
 *
 * @example
 * import { createFileRegistry } from 'micro-fn/local';
 *
 * const registry = createFileRegistry(); // MICRO_FN_HOME, default ~/.micro-fn
 * await registry.register({ name: 'greeter', version: '1.0.0', metadata: {}, endpoints: [],
 *   nodes: [{ id: 'greeter-1', address: 'http://127.0.0.1:8080', metadata: {} }] }, { ttl: 30 });
 * console.log(await registry.getService('greeter'));
 * await registry.close();
 */
export class FileRegistry implements Registry {
  /** Where the node files are: `<home>/registry`. */
  readonly directory: string;
  readonly #interval: number;
  readonly #watches = new Set<Watch>();
  readonly #tag = `${process.pid}-${Math.floor(Math.random() * 2 ** 32).toString(16)}`;
  #counter = 0;
  #closed = false;

  constructor(options: FileRegistryOptions = {}) {
    const { home = microFnHome(process.env), pollInterval = 250 } = options;
    if (typeof home !== 'string' || home === '')
      throw new ConfigError('the file registry needs a home folder: pass { home } or set MICRO_FN_HOME');
    if (typeof pollInterval !== 'number' || !Number.isFinite(pollInterval) || pollInterval <= 0) {
      throw new ConfigError(`pollInterval must be a number of milliseconds > 0, like 250; got ${String(pollInterval)}`);
    }
    this.directory = join(home, 'registry');
    this.#interval = pollInterval;
  }

  /** Writes one file per node (atomically); a record without nodes changes nothing. */
  async register(service: ServiceRecord, options: RegisterOptions = {}): Promise<void> {
    if (this.#closed) throw new MicroError('file-registry', 503, 'registry is closed');
    const ttl = options.ttl ?? 0;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) {
      throw new MicroError(
        'file-registry',
        400,
        `ttl must be a number of seconds >= 0 (0: never expires); got ${String(ttl)}`,
      );
    }
    if (!service || typeof service.name !== 'string' || service.name === '' || typeof service.version !== 'string') {
      throw new MicroError('file-registry', 400, 'a service needs a non-empty name and a version string');
    }
    if (!Array.isArray(service.nodes) || service.nodes.length === 0) return;
    if (!service.nodes.every((n) => typeof n?.id === 'string' && typeof n.address === 'string')) {
      throw new MicroError('file-registry', 400, 'every node needs an id and an address string');
    }
    await Promise.all([...this.#watches].map((w) => w.ready));
    const dir = this.#versionDir(service.name, service.version);
    const description = describeService(service);
    const expires = ttl > 0 ? Date.now() + ttl * 1000 : 0;
    const registered = performance.timeOrigin + performance.now();
    await Promise.all(
      service.nodes.map((node) =>
        this.#write(
          dir,
          `${encodeSegment(node.id)}.json`,
          JSON.stringify({ service: description, node: copyNode(node), expires, registered }),
        ),
      ),
    );
    this.#wake();
  }

  /** Removes the files of the given nodes, then the folders left empty; unknown nodes are ignored. */
  async deregister(service: ServiceRecord): Promise<void> {
    if (
      !service ||
      typeof service.name !== 'string' ||
      typeof service.version !== 'string' ||
      !Array.isArray(service.nodes)
    )
      return;
    const dir = this.#versionDir(service.name, service.version);
    await Promise.all(
      service.nodes.map((n) => unlink(join(dir, `${encodeSegment(String(n?.id))}.json`)).catch(ignore)),
    );
    await prune(dir);
    this.#wake();
  }

  /** Reads only this service's folder: the client calls it on every request. */
  async getService(name: string): Promise<ServiceRecord[]> {
    if (typeof name !== 'string') return [];
    return merge(
      (await this.#readService(join(this.directory, encodeSegment(name)))).filter((f) => f.service.name === name),
    );
  }

  async listServices(): Promise<ServiceRecord[]> {
    const names = await list(this.directory);
    return merge((await Promise.all(names.map((n) => this.#readService(join(this.directory, n))))).flat());
  }

  /** Changes from now on, by any process sharing the home; a watch opened after `close()` ends at once. */
  watch(options: WatchOptions = {}): AsyncIterable<RegistryEvent> {
    let watch: Watch | undefined;
    const channel = new Channel<RegistryEvent>(options.signal, () => {
      if (!watch) return;
      clearTimeout(watch.timer);
      this.#watches.delete(watch);
    });
    if (this.#closed) channel.close();
    if (channel.closed) return channel;
    const w: Watch = (watch = {
      channel,
      service: options.service,
      last: new Map(),
      ready: Promise.resolve(),
      polling: true,
      again: false,
    });
    w.ready = this.#snapshot(w.service).then((snapshot) => void (w.last = snapshot), ignore);
    void w.ready.then(() => {
      w.polling = false;
      this.#arm(w, w.again ? 0 : this.#interval);
    });
    this.#watches.add(w);
    return channel;
  }

  /** Ends every watch and its timer. The files stay: they belong to every process sharing the home. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of [...this.#watches]) w.channel.close();
  }

  #versionDir(name: string, version: string): string {
    return join(this.directory, encodeSegment(name), encodeSegment(version));
  }

  /** Temp file in the same folder (same file system), then rename: the target is replaced atomically. */
  async #write(dir: string, file: string, data: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const temp = join(dir, `.${this.#tag}-${++this.#counter}.tmp`);
      try {
        await mkdir(dir, { recursive: true });
        await writeFile(temp, data, { flag: 'wx' });
        await rename(temp, join(dir, file));
        return;
      } catch (err) {
        await unlink(temp).catch(ignore);
        // ENOENT: a concurrent deregister pruned the folder. EPERM/EBUSY: Windows, the target is being read.
        if (attempt < 5 && ['ENOENT', 'EPERM', 'EACCES', 'EBUSY'].includes(codeOf(err) ?? '')) {
          await new Promise((r) => setTimeout(r, attempt * 5));
          continue;
        }
        throw new MicroError('file-registry', 500, `cannot write ${join(dir, file)}: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
  }

  async #readService(serviceDir: string): Promise<NodeFile[]> {
    const versions = await list(serviceDir);
    return (await Promise.all(versions.map((v) => this.#readVersion(join(serviceDir, v))))).flat();
  }

  async #readVersion(dir: string): Promise<NodeFile[]> {
    const names = await list(dir);
    if (names.length === 0) await prune(dir);
    const now = Date.now();
    const files = await Promise.all(
      names.map(async (name) => {
        const path = join(dir, name);
        if (name.startsWith('.')) {
          const info = name.endsWith('.tmp') ? await stat(path).catch(() => undefined) : undefined;
          if (info && now - info.mtimeMs > STALE_TEMP_MS) await unlink(path).catch(ignore);
          return undefined;
        }
        if (!name.endsWith('.json')) return undefined;
        const file = parseNodeFile(await readFile(path, 'utf8').catch(() => ''));
        return file && isExpiredEntry(file, now) ? this.#reap(path) : file;
      }),
    );
    return files.filter((f): f is NodeFile => f !== undefined);
  }

  /**
   * Deletes an expired node file. Another process may refresh it between our read and the delete, so the file
   * is first renamed away and read again: a fresh one is linked back (unless an even newer one is there).
   */
  async #reap(path: string): Promise<NodeFile | undefined> {
    const grave = join(dirname(path), `.${this.#tag}-${++this.#counter}.tmp`);
    if (
      !(await rename(path, grave).then(
        () => true,
        () => false,
      ))
    )
      return undefined;
    const file = parseNodeFile(await readFile(grave, 'utf8').catch(() => ''));
    const fresh = file && !isExpiredEntry(file, Date.now());
    if (fresh)
      await link(grave, path).catch((err) =>
        codeOf(err) === 'EEXIST' ? undefined : rename(grave, path).catch(ignore),
      );
    await unlink(grave).catch(ignore);
    if (!fresh) await prune(dirname(path));
    return fresh ? file : undefined;
  }

  async #snapshot(service: string | undefined): Promise<Map<string, ServiceRecord>> {
    const services = service === undefined ? await this.listServices() : await this.getService(service);
    return new Map(services.map((s) => [keyOf(s), s]));
  }

  #arm(w: Watch, delay: number): void {
    clearTimeout(w.timer);
    if (this.#closed || w.channel.closed) return;
    w.timer = setTimeout(() => void this.#poll(w), delay);
    w.timer.unref?.();
  }

  /** Starts a poll of every watch now: changes made through this instance need not wait for the interval. */
  #wake(): void {
    for (const w of this.#watches) {
      if (w.polling) w.again = true;
      else this.#arm(w, 0);
    }
  }

  async #poll(w: Watch): Promise<void> {
    if (w.polling) return void (w.again = true);
    w.polling = true;
    w.again = false;
    try {
      const snapshot = await this.#snapshot(w.service);
      for (const event of diff(w.last, snapshot)) w.channel.push(event);
      w.last = snapshot;
    } catch {
      // unreadable for a moment: the next poll compares against the last good snapshot
    } finally {
      w.polling = false;
      this.#arm(w, w.again ? 0 : this.#interval);
    }
  }
}

/** A registry kept in files under `home` (default `MICRO_FN_HOME`, else `~/.micro-fn`). */
export function createFileRegistry(options?: FileRegistryOptions): FileRegistry {
  return new FileRegistry(options);
}
