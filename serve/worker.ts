/**
 * One single-use function process: spawned with only the environment it is given, it loads its bundle,
 * reports ready, takes one invocation over IPC and exits. Its stdout/stderr are captured line by line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import type { FromFunction, IpcReady, IpcReply, IpcSettled, ToFunction } from '../adapters/local/ipc.js';
import { IPC_ENV, encodeMessage, readMessages } from '../adapters/local/ipc.js';

export interface WorkerOptions {
  bundle: string;
  env: Record<string, string>;
  /**
   * Resident memory limit in MiB, enforced by watching the process while it serves (a V8 heap flag would do
   * it too, but any V8 flag makes Node drop its built-in code cache: ~20 ms more per start).
   */
  memory: number;
  /** Started to wait in the warm pool (it warms up first), rather than for an invocation at hand. */
  warm: boolean;
  /** Receives each output line, with the id of the invocation being served (or `init`). */
  log: (line: string, stream: 'stdout' | 'stderr', invocation: string) => void;
}

export type WorkerResult =
  | { kind: 'reply'; reply: IpcReply }
  | { kind: 'settled'; settled: IpcSettled }
  | { kind: 'exit'; code: number | null; signal: string | null; overMemory?: number };

const PAGE = 4096;
const WATCH_INTERVAL = 25;

export class Worker {
  readonly child: ChildProcess;
  readonly #channel: Duplex;
  /** Resolves with the function's description once it is warm; rejects if it dies first. */
  readonly ready: Promise<IpcReady>;
  #invocation = 'init';
  readonly #memory: number;
  #overMemory: number | undefined;
  #result: ((r: WorkerResult) => void) | undefined;
  #exited = false;
  readonly exited: Promise<void>;

  constructor(options: WorkerOptions) {
    this.#memory = options.memory;
    this.child = spawn(process.execPath, [options.bundle], {
      env: { ...options.env, [IPC_ENV]: '1' },
      // fd 3: the message pipe (ipc.ts).
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    this.#channel = this.child.stdio[3] as Duplex;
    this.#channel.on('error', () => {}); // the process died: its 'close' reports it
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: this.child[stream]!, crlfDelay: Infinity }).on('line', (line) =>
        options.log(line, stream, this.#invocation),
      );
    }
    let readyResolve!: (r: IpcReady) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => ((readyResolve = resolve), (readyReject = reject)));
    this.ready.catch(() => {});
    let described: IpcReady | undefined;
    readMessages<FromFunction>(this.#channel, (message) => {
      if (message.type === 'ready') {
        // A warm process gets a ping first, so both ends have run the IPC paths once before the invocation.
        if (options.warm) ((described = message), this.#channel.write(encodeMessage({ type: 'ping' })));
        else readyResolve(message);
      } else if (message.type === 'pong') readyResolve(described!);
      else if (message.type === 'reply') this.#settle({ kind: 'reply', reply: message });
      else if (message.type === 'settled') this.#settle({ kind: 'settled', settled: message });
    });
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': a reply sent just before the process exited may still be in the pipe when
      // 'exit' fires; 'close' comes after the channel and stdio have been read to the end.
      this.child.on('close', (code, signal) => {
        this.#exited = true;
        readyReject(new Error(`the function process exited (${signal ?? `code ${code}`}) before it was ready`));
        this.#settle({ kind: 'exit', code, signal, overMemory: this.#overMemory });
        resolve();
      });
    });
    this.child.on('error', (err) => readyReject(err));
  }

  get alive(): boolean {
    return !this.#exited;
  }

  /** Hands over the one invocation; resolves with its reply, or with the exit if the process died first. */
  run(message: ToFunction, invocation: string): Promise<WorkerResult> {
    this.#invocation = invocation;
    const result = new Promise<WorkerResult>((resolve) => (this.#result = resolve));
    if (this.#exited) this.#settle({ kind: 'exit', code: this.child.exitCode, signal: this.child.signalCode });
    else this.#channel.write(encodeMessage(message), (err) => err && this.kill());
    const watchdog = setInterval(() => void this.#checkMemory(), WATCH_INTERVAL);
    return result.finally(() => clearInterval(watchdog));
  }

  /** Kills the process once its resident memory passes the limit (Linux: /proc; elsewhere no limit). */
  async #checkMemory(): Promise<void> {
    const statm = await readFile(`/proc/${this.child.pid}/statm`, 'utf8').catch(() => '');
    const resident = Number(statm.split(' ')[1]) * PAGE;
    if (resident > this.#memory * 1024 * 1024 && !this.#exited) {
      this.#overMemory = Math.round(resident / 1024 / 1024);
      this.kill();
    }
  }

  #settle(result: WorkerResult): void {
    const resolve = this.#result;
    this.#result = undefined;
    resolve?.(result);
  }

  kill(): void {
    if (!this.#exited) this.child.kill('SIGKILL');
  }
}
