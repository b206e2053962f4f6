/**
 * A real nats-server for tests (Debian's `nats-server` package): 127.0.0.1, a random port, JetStream in a
 * temporary folder, stopped by `stop()`. Without the binary, tests are skipped with a printed reason, except
 * under CI (CI=true), where its absence is a failure.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  /** `nats://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** `ws://127.0.0.1:<port>` when started with `websocket: true`. */
  websocket?: string;
  /** `http://127.0.0.1:<port>`, the monitoring endpoint (`/connz`...), when started with `monitor: true`. */
  monitor?: string;
  /** Stops the server (SIGTERM, then SIGKILL); the store folder is kept until `cleanup`. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store (a restart). */
  restart(): Promise<void>;
  /** Stops it and removes its store. */
  cleanup(): Promise<void>;
}

const BIN = process.env.NATS_SERVER ?? 'nats-server';

/** Whether nats-server can run here; with CI=true its absence throws instead of returning false. */
export function natsAvailable(): boolean {
  const ok = spawnSync(BIN, ['--version'], { encoding: 'utf8' }).status === 0;
  if (!ok && process.env.CI === 'true')
    throw new Error(`${BIN} is not installed, and CI=true: .ci/run installs it (apt-get install nats-server)`);
  if (!ok) console.log(`  (skipping NATS tests: ${BIN} is not installed; apt-get install nats-server)`);
  return ok;
}

export interface StartOptions {
  jetstream?: boolean;
  websocket?: boolean;
  /** Serve the monitoring endpoint (`/connz`: the connections the server sees). */
  monitor?: boolean;
}

export async function startNatsServer(options: StartOptions = {}): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-nats-'));
  let child: ChildProcess | undefined;
  /** Every process started, so cleanup stops even one a restart left behind (say, a test failed mid-restart). */
  const started = new Set<ChildProcess>();
  let cleaned = false;
  let port = -1;
  let wsPort = -1;
  let monitorPort = -1;

  const launch = async () => {
    const config = [`listen: 127.0.0.1:${port}`, `ports_file_dir: "${dir}"`];
    if (options.jetstream !== false) config.push(`jetstream { store_dir: "${join(dir, 'js')}" }`);
    if (options.websocket) config.push(`websocket { listen: "127.0.0.1:${wsPort}", no_tls: true }`);
    if (options.monitor) config.push(`http: "127.0.0.1:${monitorPort}"`);
    const configFile = join(dir, 'nats.conf');
    (await import('node:fs')).writeFileSync(configFile, config.join('\n'));
    for (const f of readdirSync(dir)) if (f.endsWith('.ports')) rmSync(join(dir, f));
    if (cleaned) throw new Error('nats-server was cleaned up');
    const proc = spawn(BIN, ['-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    started.add(proc);
    proc.once('exit', () => started.delete(proc));
    let log = '';
    proc.stderr!.on('data', (d: Buffer) => (log += d));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const file = readdirSync(dir).find((f) => f.endsWith('.ports'));
      // nats-server writes the file after creating it: an empty or partial file is read again on the next turn.
      const ports = file ? (parsePorts(readFileSync(join(dir, file), 'utf8')) ?? undefined) : undefined;
      if (ports) {
        port = Number(new URL(ports.nats[0]!).port);
        if (ports.websocket?.[0]) wsPort = Number(new URL(ports.websocket[0]).port);
        if (ports.monitoring?.[0]) monitorPort = Number(new URL(ports.monitoring[0]).port);
        if (/Server is ready/.test(log)) return;
      }
      if (proc.exitCode !== null) throw new Error(`nats-server exited ${proc.exitCode}: ${log}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`nats-server did not start within 10 s: ${log}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  await launch().catch((err: unknown) => {
    for (const proc of started) proc.kill('SIGKILL'); // nothing may outlive a failed start: uvu would never exit
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    get url() {
      return `nats://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    get websocket() {
      return options.websocket ? `ws://127.0.0.1:${wsPort}` : undefined;
    },
    get monitor() {
      return options.monitor ? `http://127.0.0.1:${monitorPort}` : undefined;
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
    async cleanup() {
      cleaned = true;
      await stop();
      for (const proc of started) proc.kill('SIGKILL');
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

type Ports = { nats: string[]; websocket?: string[]; monitoring?: string[] };

function parsePorts(text: string): Ports | undefined {
  try {
    const ports = JSON.parse(text) as Partial<Ports>;
    return ports.nats?.[0] ? (ports as Ports) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The client connections the server sees (its `/connz`), by name: those open, or with `all` those closed since it
 * started too (each connection ever opened). The server needs `monitor: true`.
 */
export async function serverConnections(server: NatsServer, state: 'open' | 'all' = 'open'): Promise<string[]> {
  if (!server.monitor) throw new Error('serverConnections needs a server started with { monitor: true }');
  const url = `${server.monitor}/connz?state=${state}&limit=100000`;
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = (await response.json()) as { connections?: { name?: string }[] };
  return (body.connections ?? []).map((c) => c.name ?? '');
}
