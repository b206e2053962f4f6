/**
 * One single-use function process, started through serve's launcher (launcher.ts) with only the environment it is
 * given: it loads its bundle, reports ready, takes one invocation over its message pipe and exits. Its stdout/stderr
 * are captured line by line. Its resident memory is watched from its start: a process over the limit is stopped,
 * and one found over it when it reports ready, or when it is about to be handed its invocation, never gets one.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { errors, toMicroError } from '../runtime/core/errors.js';
import type {
  FromFunction,
  IpcCancel,
  IpcCredit,
  IpcReady,
  IpcReply,
  IpcSettled,
  IpcSpans,
  IpcStoreCall,
  IpcStoreReply,
  IpcStream,
  ToFunction,
} from '../adapters/local/ipc.js';
import { IPC_ENV, MAX_LINE, STORE_IN_FLIGHT_LIMIT, encodeMessage, readMessages } from '../adapters/local/ipc.js';
import { STORE_PIPE_ENV } from '../runtime/plugins/local/store-pipe.js';
import type { StoreEndpoint } from '../runtime/plugins/local/protocol.js';
import { Credit, PipeReader, writeStream } from '../adapters/local/pipe-stream.js';
import type { MessageStream } from '../runtime/core/stream.js';
import type { LaunchedProcess, Launcher, Pipes } from './launcher.js';

export interface WorkerOptions {
  launcher: Launcher;
  /** The bundle, where the function's user can read it (Launcher.stage). */
  bundle: string;
  env: Record<string, string>;
  /**
   * Resident memory limit in MiB, enforced by watching the process (a V8 heap flag would do it too, but any V8 flag
   * makes Node drop its built-in code cache: ~20 ms more per start).
   */
  memory: number;
  /** Started to wait in the warm pool (it warms up first), rather than for an invocation at hand. */
  warm: boolean;
  /** Receives each output line, with the id of the invocation being served (or `init`). */
  log: (line: string, stream: 'stdout' | 'stderr', invocation: string) => void;
  /** Receives the spans the process recorded (serve/observe/span-sink.ts); absent, they are ignored. */
  spans?: (message: IpcSpans) => void;
  /**
   * Runs a store operation the process sends on its pipe (IpcStoreCall), as the control service's endpoint of that
   * name would; absent, the process is not offered the pipe for its store (it calls the control service).
   */
  store?: (endpoint: StoreEndpoint, request: unknown) => Promise<unknown>;
}

export type WorkerResult =
  /** `stream`: the reply's messages, read from the pipe as they are pulled (the reply said `stream: true`). */
  | { kind: 'reply'; reply: IpcReply; stream?: PipeReader }
  | { kind: 'settled'; settled: IpcSettled }
  | { kind: 'exit'; code: number | null; signal: string | null; overMemory?: number; overLine?: number };

const PAGE = 4096;
/** Where a statm line is read (`size resident shared …`, in pages: a few dozen characters). */
const STATM = Buffer.alloc(128);
/**
 * Characters of store answers a process may leave unread in its pipe before the next answer: past it, it is stopped
 * (a process that sends store operations without reading the answers must not grow serve's memory).
 */
const STORE_UNREAD = 64 * 1024 * 1024;
/** How often memory is read while a process loads or serves, and while it waits in the pool. */
const WATCH_INTERVAL = 25;
const IDLE_INTERVAL = 250;
/** How long output may still arrive after a process exited (a descendant holding its pipes is ended by then). */
const DRAIN = 2000;

export class Worker {
  readonly #process: LaunchedProcess;
  #channel: Socket | undefined;
  /** Resolves with the function's description once it is warm; rejects if it dies (or is over its memory) first. */
  readonly ready: Promise<IpcReady>;
  #isReady = false;
  #running = false;
  #invocation = 'init';
  readonly #memory: number;
  #overMemory: number | undefined;
  /** The length of a pipe line over MAX_LINE that got the process stopped. */
  #overLine: number | undefined;
  /** The reply stream being read, and the credit of the request stream being written. */
  #replyStream: PipeReader | undefined;
  #requestCredit = new Credit();
  /** Its caller went before the reply came (cancel). */
  #cancelled = false;
  /** The process takes several request messages on one line (its bundle is as new as this serve). */
  #batches = false;
  readonly #store: WorkerOptions['store'];
  /** Store operations it sent on its pipe that have no answer yet. */
  #storeCalls = 0;
  #result: ((r: WorkerResult) => void) | undefined;
  #exited = false;
  #exit: { code: number | null; signal: string | null } = { code: null, signal: null };
  #watch: ReturnType<typeof setTimeout> | undefined;
  /**
   * Its /proc/<pid>/statm, open from the first read on: each read is then one pread (not open, read, close), and once
   * the process has gone it fails rather than read another process that took its pid.
   */
  #statm: number | undefined;
  readonly exited: Promise<void>;
  /** Started for an invocation at hand (a cold start) rather than to wait warm in the pool. */
  readonly cold: boolean;

  constructor(options: WorkerOptions) {
    this.#memory = options.memory;
    this.cold = !options.warm;
    this.#store = options.store;
    this.#process = options.launcher.spawn({
      entry: options.bundle,
      env: { ...options.env, [IPC_ENV]: '1', ...(options.store ? { [STORE_PIPE_ENV]: '1' } : {}) },
      channel: true,
    });
    let readyResolve!: (r: IpcReady) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => ((readyResolve = resolve), (readyReject = reject)));
    this.ready.catch(() => {});
    const resolveReady = (description: IpcReady) => {
      // Checked here too: a process that loaded over its limit never enters the pool nor gets its invocation.
      if (!this.withinMemory()) return;
      this.#isReady = true;
      readyResolve(description);
    };
    const closed = this.#process.started.then(
      (pipes) => this.#attach(pipes, options, resolveReady),
      (err: Error) => readyReject(err),
    );
    this.exited = this.#process.exit.then(async (exit) => {
      // A reply sent just before the process exited may still be in the pipe: its streams are read to the end.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, DRAIN)))]);
      clearTimeout(timer);
      this.#exited = true;
      this.#exit = exit;
      clearTimeout(this.#watch);
      if (this.#statm !== undefined) closeSync(this.#statm);
      this.#statm = undefined;
      readyReject(this.#notReady(exit));
      this.#requestCredit.stop();
      this.#settle(this.#exitResult());
    });
  }

  /** Sets up the pipes; resolves once they have all closed. */
  #attach(pipes: Pipes, options: WorkerOptions, resolveReady: (r: IpcReady) => void): Promise<unknown> {
    const channel = (this.#channel = pipes.channel!);
    channel.on('error', () => {}); // the process died: its exit reports it
    this.#watchMemory();
    for (const stream of ['stdout', 'stderr'] as const) {
      pipes[stream].on('error', () => {});
      createInterface({ input: pipes[stream], crlfDelay: Infinity }).on('line', (line) =>
        options.log(line, stream, this.#invocation),
      );
    }
    let described: IpcReady | undefined;
    const tooLong = (length: number) => {
      this.#overLine = length;
      options.log(
        `the function process wrote a line of more than ${MAX_LINE} characters to its pipe (fd 3) and was stopped`,
        'stderr',
        this.#invocation,
      );
      this.kill();
    };
    readMessages<FromFunction>(
      channel,
      (message) => {
        if (message.type === 'data' || message.type === 'end') {
          const stream = this.#replyStream;
          const waiting = stream?.waiting;
          // Beyond the credit it was granted, the process broke the protocol: its stream has failed, it is stopped.
          if (stream && !stream.receive(message)) this.kill();
          // Its reader waited: it writes these messages on before serve reads on (the first of a stream, at once).
          else if (waiting) return 'yield';
        } else if (message.type === 'credit' || message.type === 'cancel') this.#requestCredit.receive(message);
        else if (message.type === 'ready') {
          this.#batches = message.batches === true;
          // A warm process gets a ping first, so both ends have run the IPC paths once before the invocation.
          if (options.warm) ((described = message), channel.write(encodeMessage({ type: 'ping' })));
          else resolveReady(message);
        } else if (message.type === 'pong') resolveReady(described!);
        else if (message.type === 'reply') {
          this.#settle({ kind: 'reply', reply: message, stream: this.#readStream(message) });
          // The caller gets the reply before serve reads what came after it: then the stream's first message.
          if (message.stream) return 'yield';
        } else if (message.type === 'settled') this.#settle({ kind: 'settled', settled: message });
        else if (message.type === 'spans') options.spans?.(message);
        else if (message.type === 'store') this.#storeCall(message, options.log);
      },
      tooLong,
    );
    return Promise.all(
      [channel, pipes.stdout, pipes.stderr].map((s) => new Promise((resolve) => s.once('close', resolve))),
    );
  }

  /** Runs a store operation of the process and answers it on its pipe (see WorkerOptions.store). */
  #storeCall(call: IpcStoreCall, log: WorkerOptions['log']): void {
    const store = this.#store;
    if (!store || this.#exited) return;
    const stop = (why: string) => {
      log(`the function process ${why} and was stopped`, 'stderr', this.#invocation);
      this.kill();
    };
    if (this.#storeCalls >= STORE_IN_FLIGHT_LIMIT)
      return stop(`sent more than ${STORE_IN_FLIGHT_LIMIT} store operations at once on its pipe (fd 3)`);
    this.#storeCalls++;
    const answer = (reply: Omit<IpcStoreReply, 'type' | 'id'>) => {
      this.#storeCalls--;
      if (this.#exited) return;
      const channel = this.#channel!;
      if (channel.writableLength > STORE_UNREAD)
        return stop(`left more than ${STORE_UNREAD} characters of store answers unread in its pipe`);
      channel.write(encodeMessage({ type: 'store-reply', id: call.id, ...reply }));
    };
    store(call.endpoint, call.request).then(
      (response) => answer({ response }),
      (err: unknown) => answer({ error: toMicroError(err, 'micro-fn').toJSON() }),
    );
  }

  get alive(): boolean {
    return !this.#exited;
  }

  /** Whether its invocation was written to its pipe: until then, it ran none of it. */
  get handed(): boolean {
    return this.#running;
  }

  /**
   * Hands over the one invocation; resolves with its reply, or with the exit if the process died first. A cold
   * start's invocation waits until the process is ready and within its memory limit. `stream`, the request's
   * messages (the invoke says `stream: true`), follows the invoke within the credit the process grants.
   */
  run(message: ToFunction, invocation: string, stream?: MessageStream): Promise<WorkerResult> {
    this.#invocation = invocation;
    const result = new Promise<WorkerResult>((resolve) => (this.#result = resolve));
    if (this.#isReady || this.#exited) this.#send(message, stream);
    else
      this.ready.then(
        () => this.#send(message, stream),
        () => void stream?.[Symbol.asyncIterator]().return?.(),
      ); // its exit settles the result
    return result;
  }

  #send(message: ToFunction, stream: MessageStream | undefined): void {
    if (this.#exited) {
      void stream?.[Symbol.asyncIterator]().return?.();
      return this.#settle(this.#exitResult());
    }
    this.#running = true;
    // Watched often from now on: the idle pace (a check every IDLE_INTERVAL) would leave a handler that allocates
    // fast that long to grow past its limit unseen.
    // (The pool checked it as it handed this process over: the next check is one WATCH_INTERVAL away.)
    clearTimeout(this.#watch);
    this.#watchMemory(WATCH_INTERVAL);
    this.#channel!.write(encodeMessage(message), (err) => err && this.kill());
    if (this.#cancelled) this.#channel!.write(encodeMessage({ type: 'cancel' }));
    if (stream) void this.#writeStream(stream);
  }

  /** Sends the request's messages, within the credit the process grants; stops when it cancels or exits. */
  async #writeStream(stream: MessageStream): Promise<void> {
    const send = (m: IpcStream) =>
      new Promise<void>((resolve) => {
        if (this.#exited) return resolve();
        if (m.type === 'data') this.streamed += m.bodies?.length ?? 1;
        this.#channel!.write(encodeMessage(m), () => resolve());
      });
    const options = this.#batches ? {} : { batch: 0 };
    await writeStream(stream, this.#requestCredit, send, (err) => toMicroError(err, 'micro-fn'), options).catch(
      () => {},
    );
  }

  /**
   * Tells the process its caller went before the reply came: a stream's handler sees its signal fire at once (even
   * before its first item), a request stream stops. A plain handler runs on, as it would have.
   */
  cancel(): void {
    if (this.#exited || this.#cancelled) return;
    this.#cancelled = true;
    // A cold start's invoke waits for its process to be ready: the cancel follows it then.
    if (this.#running) this.#channel!.write(encodeMessage({ type: 'cancel' }));
  }

  /** Messages of the request's stream sent so far. */
  streamed = 0;

  /** The reader of the reply's stream, when the reply says one follows. */
  #readStream(reply: IpcReply): PipeReader | undefined {
    if (!reply.stream) return undefined;
    const send = (m: IpcCredit | IpcCancel) => {
      if (!this.#exited) this.#channel!.write(encodeMessage(m));
    };
    return (this.#replyStream = new PipeReader(send, 'micro-fn'));
  }

  #exitResult(): WorkerResult {
    return { kind: 'exit', ...this.#exit, overMemory: this.#overMemory, overLine: this.#overLine };
  }

  /** How the process ended, once it has: for the error of a stream it left unfinished. */
  get exit(): { code: number | null; signal: string | null; overMemory?: number; overLine?: number } | undefined {
    return this.#exited ? { ...this.#exit, overMemory: this.#overMemory, overLine: this.#overLine } : undefined;
  }

  /**
   * Reads the process's resident memory now; over the limit, it is killed and this returns false (its exit says
   * why). Linux: /proc; elsewhere there is no limit.
   */
  withinMemory(): boolean {
    const pid = this.#process.pid;
    if (this.#exited || pid === undefined) return !this.#exited;
    let resident = 0;
    try {
      this.#statm ??= openSync(`/proc/${pid}/statm`, 'r');
      const length = readSync(this.#statm, STATM, 0, STATM.length, 0);
      resident = Number(STATM.toString('latin1', 0, length).split(' ')[1]) * PAGE;
    } catch {
      return true; // gone (its exit follows), or not Linux
    }
    if (!(resident >= 0)) return true; // nothing read: gone
    if (resident <= this.#memory * 1024 * 1024) return true;
    this.#overMemory ??= Math.round(resident / 1024 / 1024);
    this.kill();
    return false;
  }

  /**
   * Watches memory from the start (or `after` ms): often while it loads or serves, less while it waits in the pool.
   */
  #watchMemory(after = 0): void {
    const tick = () => {
      if (!this.withinMemory()) return;
      const idle = this.#isReady && !this.#running;
      this.#watch = setTimeout(tick, idle ? IDLE_INTERVAL : WATCH_INTERVAL).unref();
    };
    if (after > 0) this.#watch = setTimeout(tick, after).unref();
    else tick();
  }

  /** Why `ready` rejects: the exit, or the memory limit it went over while loading. */
  #notReady(exit: { code: number | null; signal: string | null }): Error {
    if (this.#overMemory !== undefined)
      return errors.badRequest(
        'micro-fn',
        `the function's process used ${this.#overMemory} MiB as it loaded, over its memory limit of ${this.#memory} MiB, and was stopped before it was handed any invocation: raise the limit (micro-fn deploy --memory, micro-fn serve --memory) or make its module load less`,
      );
    return new Error(`the function process exited (${exit.signal ?? `code ${exit.code}`}) before it was ready`);
  }

  #settle(result: WorkerResult): void {
    const resolve = this.#result;
    this.#result = undefined;
    resolve?.(result);
  }

  kill(): void {
    if (!this.#exited) this.#process.kill();
  }
}
