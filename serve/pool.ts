/**
 * The processes of one deployed function: a warm pool of pre-started single-use processes (refilled in the
 * background), a concurrency limit with a bounded queue (429 when full), and a per-invocation timeout
 * (the process is killed, the caller gets 408). A crash answers 500; the pool keeps serving.
 *
 * A queued call never starts once nobody waits for it: its caller disconnected (dropped at once, its place in the
 * queue freed), its deadline (`Micro-Timeout`) passed (408), or it waited `queueWait` (429, not started).
 */
import { MicroError, errors, notStarted, parseError } from '../runtime/core/errors.js';
import { headers } from '../runtime/core/metadata.js';
import { DEFAULT_GRACE } from '../runtime/core/function.js';
import type { Caller } from '../runtime/core/transport.js';
import { MAX_LINE, type IpcInvoke, type IpcReady, type ToFunction } from '../adapters/local/ipc.js';
import { CANCELLED, type PipeReader } from '../adapters/local/pipe-stream.js';
import type { MessageStream } from '../runtime/core/stream.js';
import { availableParallelism } from 'node:os';
import { Worker, type WorkerOptions, type WorkerResult } from './worker.js';
import type { InvocationEvent } from './observe/event.js';
import type { PoolBudget } from './pool-budget.js';

/** How long closing waits for used processes to exit on their own (they deregister, send their spans) at most. */
const RETIRE_BOUND = 2000;
/** How long a pool that grew keeps its extra processes without a call before it shrinks back to its floor. */
export const POOL_IDLE = 10_000;
/** What a start is assumed to take until one has been measured (ms). */
const FIRST_START = 100;
/** Processes an invocation is offered to when each dies before it was handed the invocation. */
const START_TRIES = 3;
/**
 * Warm processes a pool starts at once at most: two per core, since a start also waits (its files, the launcher's
 * hops, the warm-up ping) and leaves its core idle meanwhile; many more would only make each start slower.
 */
const STARTS = 2 * Math.max(1, availableParallelism());
/**
 * How long the replacement of a process just handed an invocation waits before it starts, unless a call finds no
 * warm process first or the used one exits: a start takes a CPU for tens of milliseconds, and started beside the
 * invocation it slows the invocation's first answer (a server stream's first item through serve on 2 CPUs, median
 * 4.1-4.3 ms with the start at once, 2.5-2.6 ms with it 5 ms later).
 */
const REFILL_AFTER = 5;

export interface PoolOptions extends Omit<WorkerOptions, 'log' | 'warm'> {
  name: string;
  /**
   * Warm processes kept ready at least (the floor); 0 starts one per invocation and never keeps any. With a `budget`,
   * the pool keeps more while calls come faster than it can replace the processes they use.
   */
  size: number;
  /** Memory for warm processes beyond `size`, shared with the other pools of serve; absent, the pool stays at `size`. */
  budget?: PoolBudget;
  /** Milliseconds without a call after which a pool that grew shrinks back to `size`. Default POOL_IDLE. */
  idle?: number;
  /** Invocations running at once. */
  concurrency: number;
  /** Invocations waiting for a slot; past it, 429. */
  queue: number;
  /** Milliseconds an invocation may take. */
  timeout: number;
  /** Milliseconds a call may wait in the queue for a slot; past it, 429 (not started). Default: `timeout`. */
  queueWait?: number;
  log: (line: string, stream: 'stdout' | 'stderr', invocation: string) => void;
  /** Receives every invocation as it ends, and every call dropped before it started (serve/observe/). */
  onInvocation?: (event: InvocationEvent) => void;
}

/** What run() learns of an invocation on its way, for its event. */
interface Seen {
  started: boolean;
  cold: boolean;
  /** Messages of a stream: in, of the request's; out, of the reply's. */
  streamed?: { in: number; out: number };
}

export type Outcome =
  | {
      kind: 'reply';
      status: number;
      contentType: string;
      body: string;
      metadata: Record<string, string>;
      error?: MicroError;
      /** The reply's messages (a server or bidi stream); the invocation lasts until it has ended. */
      stream?: PipeReader;
    }
  | { kind: 'settled'; ok: boolean; error?: MicroError };

/** A call in the queue: `start` hands it the slot. */
interface Queued {
  start(): void;
}

export class FunctionPool {
  readonly options: PoolOptions;
  #warm: Worker[] = [];
  /** Used processes on their way out: their spans and last output still come (close waits for them). */
  readonly #retiring = new Set<Worker>();
  #starting = 0;
  /** Processes started since the pool was made. */
  #started = 0;
  /** Warm processes kept beyond the floor, each with its memory reserved in the budget. */
  #extra = 0;
  /** When processes were taken for invocations lately: within the last start's length. */
  #takes: number[] = [];
  #lastTake = 0;
  /** How long a warm start takes, smoothed (ms): the window the pool must see ahead. */
  #startMs = FIRST_START;
  #shrinkTimer: ReturnType<typeof setTimeout> | undefined;
  /** A refill held back for REFILL_AFTER after a process was taken (see #refillSoon). */
  #refillTimer: ReturnType<typeof setTimeout> | undefined;
  /** Calls that found no warm process and wait for the next of those starting (see #take). */
  #takers: ((worker: Worker | undefined) => void)[] = [];
  #inflight = 0;
  /** Calls waiting for a slot, in order; one leaves early when its caller goes or its wait ends. */
  #waiting: Queued[] = [];
  /** Broker messages waiting for a slot: unbounded (the broker holds them anyway), served after callers. */
  #backlog: (() => void)[] = [];
  #closed = false;
  /** The bundle as the processes load it: staged by describe(). */
  #bundle: string | undefined;

  constructor(options: PoolOptions) {
    this.options = options;
  }

  /**
   * Starts one process and waits until it is ready: the function's description. Fills the pool. An abort of
   * `signal` kills that process (the promise rejects once it has exited).
   */
  async describe(signal?: AbortSignal): Promise<IpcReady> {
    // Where the function's user can read it (serve/launcher.ts), for this pool's life.
    this.#bundle ??= await this.options.launcher.stage(this.options.bundle);
    const since = performance.now();
    const worker = this.#spawn(true);
    const abort = () => worker.kill();
    signal?.addEventListener('abort', abort, { once: true });
    const ready = await worker.ready
      .finally(() => signal?.removeEventListener('abort', abort))
      .catch(async (err: unknown) => {
        await this.close(); // nothing was started but that process; its staged bundle goes
        throw err;
      });
    this.#startMs = performance.now() - since;
    if (this.options.size > 0) this.#keep(worker);
    else worker.kill();
    this.refill();
    return ready;
  }

  get stats() {
    return {
      warm: this.#warm.length,
      starting: this.#starting,
      inflight: this.#inflight,
      queued: this.#waiting.length,
      backlog: this.#backlog.length,
      target: this.#target,
      started: this.#started,
    };
  }

  /**
   * Runs one invocation in a process of its own. Never throws: failures are error outcomes. A call whose `caller`
   * goes, or whose deadline passes, while it waits for a slot is not started.
   */
  async run(message: ToFunction, caller?: Caller, stream?: MessageStream): Promise<Outcome> {
    const report = this.options.onInvocation;
    const seen: Seen = { started: false, cold: false };
    const since = performance.now();
    // A stream is the one invocation: its event comes once it has ended, with its duration to then.
    let ended: Promise<MicroError | undefined> | undefined;
    const outcome = await this.#run(message, caller, seen, stream, (end) => (ended = end));
    if (!report) return outcome;
    if (!ended) report(eventOf(this.options.name, message, outcome, seen, performance.now() - since));
    else
      void ended.then((error) =>
        report(eventOf(this.options.name, message, { ...outcome, error }, seen, performance.now() - since)),
      );
    return outcome;
  }

  async #run(
    message: ToFunction,
    caller: Caller | undefined,
    seen: Seen,
    stream?: MessageStream,
    streaming?: (ended: Promise<MicroError | undefined>) => void,
  ): Promise<Outcome> {
    const { name, timeout } = this.options;
    if (message.type === 'invoke') {
      const refused = await this.#admit(message, caller);
      if (refused) return failure(refused, message);
    } else await this.#messageSlot();
    seen.started = true;
    let worker: Worker | undefined;
    /** Set while a reply stream runs on: the slot and the process are given up once it has ended. */
    let held: Promise<number> | undefined;
    try {
      worker = await this.#take(seen);
      let timer: ReturnType<typeof setTimeout> | undefined;
      let reader: PipeReader | undefined;
      // The function answers 408 itself at `timeout` (MICRO_FN_TIMEOUT) and its handler's signal fires; a process
      // that has not answered (or ended its stream) a grace later is stopped.
      const timedOut = new Promise<'timeout'>(
        (resolve) =>
          (timer = setTimeout(() => {
            reader?.fail(
              errors.timeout(name, `${name} did not end its stream within ${timeout} ms; its process was stopped`),
            );
            resolve('timeout');
            worker!.kill();
          }, timeout + DEFAULT_GRACE)),
      );
      if (stream) seen.streamed = { in: 0, out: 0 };
      // A caller that goes before the reply has come cancels the invocation in its process (a stream's handler sees
      // its signal fire); once a reply stream has come, its reader's cancel does (serve/runtime.ts).
      let result: WorkerResult | 'timeout';
      for (let tries = 1; ; tries++) {
        const taken = worker;
        const running = taken.run(message, message.id, stream);
        // Its replacement starts shortly, while it serves (the launcher starts it: serve only sends it a message), so
        // neither this reply nor the used process's exit holds it back.
        this.#refillSoon();
        const off = caller?.onGone(() => taken.cancel());
        result = await Promise.race([running, timedOut]).finally(off);
        // A process that died before it was handed the invocation ran none of it: another one takes it. Not a
        // request stream (the first process closed it), nor for a caller that went.
        const unstarted = result !== 'timeout' && result.kind === 'exit' && !taken.handed;
        if (!unstarted || stream || caller?.gone || tries >= START_TRIES) break;
        this.options.log(
          `a process ${how(result as { code: number | null; signal: string | null })} before it was handed this invocation; another one takes it`,
          'stderr',
          message.id,
        );
        this.#retire(taken);
        worker = await this.#take(seen);
      }
      if (result === 'timeout') {
        return failure(
          errors.timeout(name, `${name} did not answer within ${timeout} ms; its process was stopped`),
          message,
        );
      }
      if (result.kind === 'reply' && result.stream) {
        reader = result.stream;
        held = this.#streamed(worker, reader, name, seen, () => clearTimeout(timer));
        streaming?.(reader.end.then((end) => end.error));
      } else {
        clearTimeout(timer);
        if (stream) seen.streamed = { in: worker.streamed, out: 0 };
      }
      return outcomeOf(result, name, message);
    } catch (err) {
      return failure(errors.internal(name, `${name} could not be started: ${(err as Error).message}`), message);
    } finally {
      const release = (linger?: number) => {
        this.#releaseSlot();
        if (worker) this.#retire(worker, linger);
        else this.refill();
      };
      if (held) void held.then(release);
      else release();
    }
  }

  /**
   * Follows a reply stream to its end: a process that dies first ends it with a 500 that says how. Resolves, once it
   * ended, with how long the process may still take to exit: its grace after a cancel (the caller went; its handler's
   * signal fired), else `timeout`.
   */
  async #streamed(worker: Worker, reader: PipeReader, name: string, seen: Seen, done: () => void): Promise<number> {
    void worker.exited.then(() =>
      reader.fail(errors.internal(name, `${name} crashed mid-stream: its process ${how(worker.exit!)}`)),
    );
    const end = await reader.end;
    done();
    seen.streamed = { in: worker.streamed, out: reader.count };
    return end.error?.code === CANCELLED ? DEFAULT_GRACE * 2 : this.options.timeout;
  }

  /**
   * Waits for a used process to exit (its replacement was started soon after it was taken), and refills once it has: a
   * refill held back while many used processes were still exiting goes on. A process still there `linger` ms after
   * its answer (default `timeout`) is killed.
   */
  #retire(worker: Worker, linger = this.options.timeout): void {
    const timer = setTimeout(() => worker.kill(), linger).unref();
    this.#retiring.add(worker);
    void worker.exited.then(() => {
      clearTimeout(timer);
      this.#retiring.delete(worker);
      this.refill();
    });
  }

  /** A running slot for a broker message, which waits for one as long as it takes (a 429 would only fail it). */
  async #messageSlot(): Promise<void> {
    if (this.#inflight < this.options.concurrency) {
      this.#inflight++;
      return;
    }
    return new Promise<void>((resolve) => this.#backlog.push(resolve));
  }

  /**
   * A running slot for a call, or the reason it will not start: the queue is full (429), its caller went (503), its
   * deadline passed (408) or its wait did (429). A call that waited is told the time its caller has left.
   */
  async #admit(message: IpcInvoke, caller: Caller | undefined): Promise<MicroError | undefined> {
    if (this.#inflight < this.options.concurrency) {
      this.#inflight++;
      return undefined;
    }
    const { name, concurrency, queue } = this.options;
    if (this.#waiting.length >= queue)
      return notStarted(
        429,
        `${name} is at its limit: ${concurrency} running, ${queue} queued; the call was not started`,
      );
    const asked = Number(message.metadata[headers.timeout]);
    const deadline = asked > 0 ? Date.now() + asked : undefined;
    const refused = await this.#queue(caller, deadline);
    if (refused) {
      this.options.log(`not started: ${refused.detail}`, 'stderr', message.id);
      return refused;
    }
    if (deadline !== undefined) message.metadata[headers.timeout] = String(Math.max(1, deadline - Date.now()));
    return undefined;
  }

  /** Waits in the queue until a slot passes to this call (undefined), or it leaves the queue (why). */
  #queue(caller: Caller | undefined, deadline: number | undefined): Promise<MicroError | undefined> {
    const { name, concurrency } = this.options;
    const wait = this.options.queueWait ?? this.options.timeout;
    const since = Date.now();
    // Which bound ends the wait is decided here, not by the clock when the timer fires: a timer may fire a
    // millisecond before Date.now() reaches the deadline, which then read as the 429 of a wait that ran out.
    const byDeadline = deadline !== undefined && deadline <= since + wait;
    const until = byDeadline ? deadline : since + wait;
    if (caller?.gone) return Promise.resolve(notStarted(503, `the caller of ${name} went away before it was queued`));
    return new Promise((resolve) => {
      let off: (() => void) | undefined;
      const leave = (why: MicroError): void => {
        const at = this.#waiting.indexOf(entry);
        if (at === -1) return; // a slot reached it first
        this.#waiting.splice(at, 1);
        clearTimeout(timer);
        off?.();
        resolve(why);
      };
      const entry: Queued = {
        start: () => {
          clearTimeout(timer);
          off?.();
          resolve(undefined);
        },
      };
      const timer = setTimeout(() => {
        const waited = Date.now() - since;
        leave(
          byDeadline
            ? errors.timeout(name, `the caller's deadline passed after ${waited} ms in the queue of ${name}`)
            : notStarted(429, `${name} had no free slot for ${waited} ms (${concurrency} running); try again later`),
        );
      }, until - since);
      this.#waiting.push(entry);
      off = caller?.onGone(() => leave(notStarted(503, `the caller of ${name} went away while it was queued`)));
    });
  }

  #releaseSlot(): void {
    const next = this.#waiting.shift();
    if (next) return next.start(); // the slot passes straight to the next caller
    const message = this.#backlog.shift();
    if (message) message();
    else this.#inflight--;
  }

  /**
   * A warm process if there is one; else the first of those starting to be ready, when more are starting than calls
   * wait for them (they are further along than one started now, which would also slow them down); else a fresh one.
   * `seen.cold`: the call waited for a start.
   */
  async #take(seen: Seen): Promise<Worker> {
    this.#demand();
    let worker: Worker | undefined;
    // A process over its memory limit (it grew while it waited) is stopped here, never handed the invocation.
    while ((worker = this.#warm.shift()) && !(worker.alive && worker.withinMemory()));
    seen.cold = worker === undefined;
    if (worker) return worker;
    // A replacement held back is needed now.
    if (this.#refillTimer) this.refill();
    if (this.#starting > this.#takers.length) {
      worker = await new Promise<Worker | undefined>((resolve) => {
        // Bounded: a start that hangs as it loads gives the call, after `timeout`, a process of its own.
        const timer = setTimeout(() => {
          this.#takers = this.#takers.filter((t) => t !== taker);
          resolve(undefined);
        }, this.options.timeout);
        const taker = (w: Worker | undefined) => (clearTimeout(timer), resolve(w));
        this.#takers.push(taker);
      });
      if (worker) return worker;
    }
    // A cold start: the invocation is sent once the process says it is ready and is within its memory limit.
    return this.#spawn(false);
  }

  /**
   * Refills REFILL_AFTER ms from now, giving the invocation just handed over the CPU to itself for its first answer;
   * sooner if a call finds no warm process (#take) or a used process exits (#retire).
   */
  #refillSoon(): void {
    this.#refillTimer ??= setTimeout(() => this.refill(), REFILL_AFTER).unref();
  }

  /** Warm processes the pool keeps now: its floor and what it grew by. */
  get #target(): number {
    return this.options.size + this.#extra;
  }

  /**
   * Counts a process taken for an invocation. To keep ahead of the calls, a pool must have as many processes warm or
   * starting as calls take during one start (Little's law: arrival rate × start time): it grows to that (by the most
   * taken within the last start's length), one process at a time as the budget allows, and holds that size until
   * it has seen no call for `idle` ms.
   */
  #demand(): void {
    const now = performance.now();
    this.#lastTake = now;
    this.#takes.push(now);
    const window = Math.min(Math.max(this.#startMs, 10), 10_000);
    while (this.#takes[0]! < now - window) this.#takes.shift();
    const { size, budget, memory } = this.options;
    if (size === 0 || !budget || this.#closed) return; // --pool 0 never keeps a process
    while (this.#extra < this.#takes.length && budget.take(memory)) this.#extra++;
    if (this.#extra > 0) this.#shrinkLater();
  }

  /** Shrinks the pool back to its floor once it has seen no call for `idle` ms. */
  #shrinkLater(): void {
    if (this.#shrinkTimer) return;
    const idle = this.options.idle ?? POOL_IDLE;
    const check = () => {
      const quiet = performance.now() - this.#lastTake;
      if (quiet < idle) return void (this.#shrinkTimer = setTimeout(check, idle - quiet).unref());
      this.#shrinkTimer = undefined;
      this.#shrink();
    };
    this.#shrinkTimer = setTimeout(check, idle).unref();
  }

  /** Back to the floor: the extra warm processes are stopped (those still starting, once ready), their memory given back. */
  #shrink(): void {
    clearTimeout(this.#shrinkTimer);
    this.#shrinkTimer = undefined;
    this.options.budget?.give(this.#extra * this.options.memory);
    this.#extra = 0;
    this.#takes = [];
    for (const worker of this.#warm.splice(this.options.size)) worker.kill();
  }

  /**
   * Starts processes until the pool holds its target of warm or starting ones: at most STARTS at once (more would
   * only make each start slower, and every call wait longer for the first), and none
   * while as many used processes as the concurrency limit are still exiting (so processes that linger after their
   * answer do not pile up; their exits refill).
   */
  refill(): void {
    clearTimeout(this.#refillTimer);
    this.#refillTimer = undefined;
    while (
      !this.#closed &&
      this.#warm.length + this.#starting < this.#target &&
      this.#starting < STARTS &&
      this.#retiring.size <= this.options.concurrency
    ) {
      const since = performance.now();
      const worker = this.#spawn(true);
      this.#starting++;
      worker.ready.then(
        () => {
          this.#starting--;
          this.#startMs += (performance.now() - since - this.#startMs) / 4;
          const taker = this.#takers.shift();
          if (taker) return (taker(worker), this.refill());
          // The pool shrank while it started: it goes.
          if (this.#closed || this.#warm.length >= this.#target) return worker.kill();
          this.#keep(worker);
          this.refill();
        },
        (err: Error) => {
          this.#starting--;
          this.#takers.shift()?.(undefined); // that call starts a process of its own
          this.options.log(`a warm process failed to start: ${err.message}`, 'stderr', 'init');
        },
      );
    }
  }

  #keep(worker: Worker): void {
    this.#warm.push(worker);
    void worker.exited.then(() => {
      this.#warm = this.#warm.filter((w) => w !== worker);
    });
  }

  #spawn(warm: boolean): Worker {
    const { launcher, env, memory, log, spans, store } = this.options;
    if (this.#bundle === undefined) throw new Error('FunctionPool: describe() starts the first process');
    this.#started++;
    return new Worker({ launcher, bundle: this.#bundle, env, memory, log, warm, spans, store });
  }

  /**
   * Stops refilling and waits until every invocation already handed to this pool (running or queued) has
   * finished and its process has exited (what it sends after its answer, its spans, still arrives; one still there
   * after RETIRE_BOUND is killed), then kills the idle processes. A redeploy swaps pools first, so
   * nothing in flight fails.
   */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#inflight > 0 || this.#waiting.length > 0 || this.#backlog.length > 0)
      await new Promise((r) => setTimeout(r, 10));
    const retiring = [...this.#retiring];
    if (retiring.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const bound = new Promise((r) => (timer = setTimeout(r, Math.min(this.options.timeout, RETIRE_BOUND))));
      await Promise.race([Promise.all(retiring.map((worker) => worker.exited)), bound]);
      clearTimeout(timer);
      for (const worker of retiring) worker.kill();
    }
    this.#shrink();
    for (const worker of this.#warm.splice(0)) worker.kill();
    if (this.#bundle !== undefined) await this.options.launcher.release(this.options.bundle);
    this.#bundle = undefined;
  }
}

function outcomeOf(result: WorkerResult, name: string, message: ToFunction): Outcome {
  if (result.kind === 'reply') {
    const { status, contentType, body, metadata, error } = result.reply;
    return {
      kind: 'reply',
      status,
      contentType,
      body,
      metadata,
      error: error ? parseError(error, status, name) : undefined,
      ...(result.stream ? { stream: result.stream } : {}),
    };
  }
  if (result.kind === 'settled')
    return {
      kind: 'settled',
      ok: result.settled.ok,
      error: result.settled.error ? parseError(result.settled.error, 500, name) : undefined,
    };
  return failure(errors.internal(name, `${name} crashed: its process ${how(result)} before answering`), message);
}

/** How a process ended, for the error of its caller. */
function how(exit: { code: number | null; signal: string | null; overMemory?: number; overLine?: number }): string {
  if (exit.overLine) return `wrote a line of more than ${MAX_LINE} characters to its pipe (fd 3) and was stopped`;
  if (exit.overMemory) return `used ${exit.overMemory} MiB, over its memory limit, and was stopped`;
  return exit.signal ? `was killed (${exit.signal})` : `exited with code ${exit.code}`;
}

/** The event of an invocation that ended with `outcome` (serve/observe/event.ts). */
function eventOf(name: string, message: ToFunction, outcome: Outcome, seen: Seen, ms: number): InvocationEvent {
  const error = outcome.error;
  const ok = outcome.kind === 'reply' ? error === undefined && outcome.status < 400 : outcome.ok;
  const status = outcome.kind === 'reply' ? outcome.status : ok ? 200 : (error?.code ?? 500);
  const call = message.type === 'invoke';
  return {
    at: Date.now(),
    function: name,
    kind: call ? 'call' : 'message',
    id: message.id,
    endpoint: call ? message.endpoint : undefined,
    topic: call ? undefined : message.topic,
    attempt: call ? undefined : message.attempt,
    status,
    ok,
    started: seen.started,
    cold: seen.cold,
    ...(seen.streamed ? { streamed: seen.streamed } : {}),
    ms: Math.round(ms * 100) / 100,
    error: ok ? undefined : error?.detail,
  };
}

function failure(error: MicroError, message: ToFunction): Outcome {
  if (message.type === 'message') return { kind: 'settled', ok: false, error };
  return {
    kind: 'reply',
    status: error.code,
    contentType: 'application/json',
    body: JSON.stringify(error),
    metadata: {},
    error,
  };
}
