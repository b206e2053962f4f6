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
}

export async function startNatsServer(options: StartOptions = {}): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-nats-'));
  let child: ChildProcess | undefined;
  /** Every process started, so cleanup stops even one a restart left behind (say, a test failed mid-restart). */
  const started = new Set<ChildProcess>();
  let cleaned = false;
  let port = -1;
  let wsPort = -1;

  const launch = async () => {
    const config = [`listen: 127.0.0.1:${port}`, `ports_file_dir: "${dir}"`];
    if (options.jetstream !== false) config.push(`jetstream { store_dir: "${join(dir, 'js')}" }`);
    if (options.websocket) config.push(`websocket { listen: "127.0.0.1:${wsPort}", no_tls: true }`);
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

function parsePorts(text: string): { nats: string[]; websocket?: string[] } | undefined {
  try {
    const ports = JSON.parse(text) as { nats?: string[]; websocket?: string[] };
    return ports.nats?.[0] ? (ports as { nats: string[]; websocket?: string[] }) : undefined;
  } catch {
    return undefined;
  }
}
