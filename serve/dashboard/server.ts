/**
 * The dashboard `micro-fn serve` hosts on an address of its own (loopback only): one static page (static/) and the
 * JSON and Server-Sent Events it reads. Behind serve's credential: `/login?t=` trades a one-time token from
 * `micro-fn dashboard` (control service `Dashboard.Login`) for a session cookie (session.ts); without a valid one,
 * everything else answers 401. A Host header other than the dashboard's own address is refused (DNS rebinding), and so
 * is a replay whose Origin is not the dashboard's (a page elsewhere cannot make the browser send one).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { MicroError } from '../../runtime/core/errors.js';
import { nameProblem } from '../../runtime/plugins/local/limits.js';
import type { FunctionInfo, PoolStats, RuntimeStats } from '../../runtime/plugins/local/protocol.js';
import { source as packageFile } from '../../adapters/kit/package-root.js';
import type { DeadLetterBox } from '../dead-letters.js';
import type { Invocations } from '../observe/event.js';
import { Feed, type FeedLimits } from './feed.js';
import { recentLines } from './log-lines.js';
import { Series } from './series.js';
import { Sessions } from './session.js';

/** What the dashboard shows: `LocalRuntime` is one. */
export interface DashboardSource {
  invocations: Invocations;
  stats(): RuntimeStats;
  list(): (FunctionInfo & { stats: PoolStats })[];
  deadLetters(): DeadLetterBox;
  publish(topic: string, body: Uint8Array, headers: Record<string, string>): Promise<void>;
}

export interface DashboardOptions {
  /** `host:port` to listen on; the host must be a loopback address (port 0: any free one). */
  address: string;
  /** serve's control token: the session secrets derive from it. */
  control: string;
  /** MICRO_FN_HOME, where the function logs are. */
  home: string;
  feed?: Partial<FeedLimits>;
  /** Milliseconds a login token works (session.ts LOGIN_TTL_MS). */
  loginTtl?: number;
}

/** Dead letters shown per topic at most (Replay hands back all of them). */
const LETTERS_SHOWN = 20;
/** Bytes of a request body the dashboard reads at most (a replay names a topic). */
const BODY_LIMIT = 4096;
const ID = 'micro-fn.dashboard';

const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // The login link carries its token: never pass it on.
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** The dashboard's HTTP server. Start one with `Dashboard.start`. */
export class Dashboard {
  readonly #server: Server;
  readonly #source: DashboardSource;
  readonly #options: DashboardOptions;
  readonly #sessions: Sessions;
  readonly #series = new Series();
  readonly #unsubscribe: () => void;
  readonly #files = new Map<string, Buffer>();
  /** Feeds of invocation events. */
  readonly feed: Feed;
  /** `http://host:port`, once listening. */
  url = '';
  /** Host headers accepted: the bound address, and `localhost:<port>` for a loopback IP. */
  #hosts = new Set<string>();
  #cookie = '';

  private constructor(source: DashboardSource, options: DashboardOptions) {
    this.#source = source;
    this.#options = options;
    this.#sessions = new Sessions({ control: options.control, loginTtl: options.loginTtl });
    this.feed = new Feed(options.feed);
    this.#unsubscribe = source.invocations.on((event) => {
      this.#series.record(event);
      this.feed.send(event);
    });
    this.#server = createServer((req, res) => {
      this.#route(req, res).catch((err) => this.#error(res, 500, `the dashboard failed: ${(err as Error).message}`));
    });
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 30_000;
    this.#server.maxConnections = 64;
  }

  /** Listens on `options.address`; rejects (EADDRINUSE, ...) when it cannot, with nothing left running. */
  static async start(source: DashboardSource, options: DashboardOptions): Promise<Dashboard> {
    const dashboard = new Dashboard(source, options);
    try {
      await dashboard.#listen();
    } catch (err) {
      dashboard.#unsubscribe();
      dashboard.feed.close();
      throw err;
    }
    return dashboard;
  }

  /** A login URL for `micro-fn dashboard`: it works once, within the login TTL. */
  login(): { url: string; expires: string } {
    const { token, expires } = this.#sessions.login();
    return { url: `${this.url}/login?t=${encodeURIComponent(token)}`, expires: new Date(expires).toISOString() };
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    this.feed.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #listen(): Promise<void> {
    const { host, port } = splitAddress(this.#options.address);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const bound = (this.#server.address() as AddressInfo).port;
    const shown = host.includes(':') ? `[${host}]` : host;
    this.url = `http://${shown}:${bound}`;
    this.#hosts = new Set([`${shown}:${bound}`, `localhost:${bound}`]);
    // Cookies are per host, not per port: a name of its own per port, so two serves do not overwrite each other's.
    this.#cookie = `micro-fn-dashboard-${bound}`;
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#hosts.has((req.headers.host ?? '').toLowerCase()))
      return this.#error(res, 403, `the dashboard answers at ${this.url} only`);
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const session = this.#sessions.valid(cookieOf(req.headers.cookie, this.#cookie));
    if (url.pathname === '/login' && method === 'GET') return this.#login(url, res, session);
    if (!session) return this.#unauthorized(url, res);
    const page = STATIC[url.pathname];
    if (page && (method === 'GET' || method === 'HEAD')) return this.#static(res, page.file, page.type);
    switch (`${method} ${url.pathname}`) {
      case 'GET /api/overview':
        return this.#json(res, {
          ...this.#source.stats(),
          deployed: this.#source.list().map(({ name, version, endpoints, topics }) => ({
            name,
            version,
            endpoints,
            topics,
          })),
          series: this.#series.snapshot(),
          feed: { dropped: this.feed.dropped },
        });
      case 'GET /api/events':
        return this.feed.add(res);
      case 'GET /api/logs':
        return this.#logs(url, res);
      case 'GET /api/dlq':
        return this.#json(res, { topics: await this.#deadLetters() });
      case 'POST /api/dlq/replay':
        return this.#replay(req, res);
    }
    if (page || url.pathname.startsWith('/api/'))
      return this.#error(res, 405, `${method} ${url.pathname} is not served`);
    return this.#error(res, 404, `${url.pathname} is not a page of the dashboard`);
  }

  /** Trades a login token for a session cookie; a browser already logged in (a link opened twice) just goes in. */
  #login(url: URL, res: ServerResponse, session: boolean): void {
    if (!this.#sessions.redeem(url.searchParams.get('t') ?? '')) {
      if (session) return void res.writeHead(303, { ...SECURITY_HEADERS, location: '/' }).end();
      return this.#page(res, 401, 'This login link was used already or has expired (each works once, for a minute).');
    }
    res.writeHead(303, {
      ...SECURITY_HEADERS,
      location: '/',
      'set-cookie': `${this.#cookie}=${this.#sessions.session()}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${12 * 3600}`,
    });
    res.end();
  }

  #unauthorized(url: URL, res: ServerResponse): void {
    if (url.pathname.startsWith('/api/'))
      return this.#error(
        res,
        401,
        'not logged in to the dashboard: run `micro-fn dashboard` and open the URL it prints',
      );
    this.#page(res, 401, 'Not logged in.');
  }

  #static(res: ServerResponse, file: string, type: string): void {
    let body = this.#files.get(file);
    if (!body) this.#files.set(file, (body = readFileSync(packageFile(`serve/dashboard/static/${file}`))));
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': body.length });
    res.end(body);
  }

  #logs(url: URL, res: ServerResponse): void {
    const name = url.searchParams.get('function') ?? '';
    const problem = nameProblem('function', name);
    if (problem) return this.#error(res, 400, problem);
    const lines = Math.min(Math.max(Number(url.searchParams.get('lines')) || 200, 1), 1000);
    this.#json(res, { function: name, lines: recentLines(this.#options.home, name, lines) });
  }

  /** Every topic with dead letters (the broker's count) or that a deployed function subscribes to, with its count. */
  async #deadLetters() {
    const counted = new Map((this.#source.stats().broker?.deadLetters ?? []).map((d) => [d.topic, d.count]));
    const topics = new Set([...counted.keys(), ...this.#source.list().flatMap((f) => f.topics)]);
    const box = this.#source.deadLetters();
    const out = await Promise.all(
      [...topics].sort().map(async (topic) => {
        const messages = await box.list(topic).catch(() => []);
        return { topic, count: counted.get(topic) ?? messages.length, messages: messages.slice(0, LETTERS_SHOWN) };
      }),
    );
    return out;
  }

  async #replay(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.origin !== this.url && req.headers.origin !== `http://localhost:${new URL(this.url).port}`)
      return this.#error(res, 403, `a replay must come from the dashboard's own page (${this.url})`);
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      return this.#error(res, (err as { code?: number }).code === 413 ? 413 : 400, 'send {"topic":"<topic>"}');
    }
    const topic = (body as { topic?: unknown } | null)?.topic;
    const problem = nameProblem('topic', topic);
    if (problem) return this.#error(res, 400, problem);
    const source = this.#source;
    const replayed = await source
      .deadLetters()
      .replay(topic as string, (b, headers) => source.publish(topic as string, b, headers));
    this.#json(res, { replayed });
  }

  #json(res: ServerResponse, value: unknown): void {
    const body = JSON.stringify(value);
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json' });
    res.end(body);
  }

  #error(res: ServerResponse, code: number, detail: string): void {
    if (res.headersSent) return void res.destroy();
    res.writeHead(code, { ...SECURITY_HEADERS, 'content-type': 'application/json' });
    res.end(new MicroError(ID, code, detail).toString());
  }

  /** A small page for a person: why they are not in, and how to get in. */
  #page(res: ServerResponse, code: number, why: string): void {
    res.writeHead(code, {
      ...SECURITY_HEADERS,
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      'content-type': 'text/html; charset=utf-8',
    });
    res.end(
      `<!doctype html><meta charset="utf-8"><title>micro-fn dashboard</title><body style="font:16px system-ui;margin:3em;max-width:40em"><h1>micro-fn dashboard</h1><p>${why}</p><p>Run <code>micro-fn dashboard</code> (add <code>--open</code> to open it here) and follow the link it prints.</p></body>`,
    );
  }
}

/** The value of cookie `name` in a Cookie header. */
function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** `127.0.0.1:52981`, `[::1]:0`, `localhost:8080` as host and port. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`a dashboard address looks like 127.0.0.1:52981; got "${address}"`);
  return { host: (m[1] ?? m[2])!, port };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) return reject(Object.assign(new Error('too large'), { code: 413 }));
      chunks.push(chunk); // what comes past the limit is read and thrown away
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
