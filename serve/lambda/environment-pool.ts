/**
 * The execution environments of one function version, kept as Lambda keeps them: one invocation per
 * environment at a time, warm environments reused, another started when all are busy (up to `max`; past it,
 * invocations wait for one to be free). Each invocation's output is framed with Lambda's START / END / REPORT
 * lines, handed on line by line, and its last 4 KB kept for `LogType: Tail`. `micro-fn serve` only.
 */
import { LambdaEnvironment, type EnvironmentOptions } from './environment.js';
import type { InvokeResult, LambdaError, StreamingInvokeResult } from './runtime-api.js';

export interface EnvironmentPoolOptions extends Omit<EnvironmentOptions, 'onOutput'> {
  /** Environments at once. */
  max: number;
  /** Receives every output line with the request id it belongs to (`init` before the first invocation). */
  log(line: string, requestId: string): void;
  /** Told of each invocation as it ends (serve's request log and stats). */
  ended?(invocation: PoolInvocationEnd): void;
}

/** What an ended invocation was: for serve's request log and stats (serve/observe). */
export interface PoolInvocationEnd {
  requestId: string;
  /** `Service.Method`, when the event names one (a micro-fn function's event does). */
  endpoint?: string;
  /** 200 for a result; 408 for Lambda's timeout; 500 for any other error. */
  status: number;
  ok: boolean;
  /** Whether it waited for an environment to start (no idle one to take). */
  cold: boolean;
  /** Milliseconds from its arrival at the pool to its result. */
  ms: number;
  error?: string;
}

/** An invocation's outcome, with the tail of its log. */
export interface PoolInvocation {
  result: InvokeResult;
  /** The last 4 KB of the invocation's log, START to REPORT. */
  tail: string;
}

/** An invocation whose response may stream: `tail` resolves once it has ended, streamed or not. */
export interface PoolStreamingInvocation {
  result: StreamingInvokeResult;
  tail: Promise<string>;
}

/** A streamed response's end as the result it amounts to (for the log and stats). */
async function streamOutcome(requestId: string, end: Promise<LambdaError | undefined>): Promise<InvokeResult> {
  const error = await end;
  return error ? { requestId, error } : { requestId, payload: '' };
}

/** Lambda's `LogType: Tail` returns this much of the log. */
const TAIL_BYTES = 4096;

interface Slot {
  env: LambdaEnvironment;
  busy: boolean;
  requestId: string;
  /** The current invocation's log, trimmed to its last few KB. */
  text: string;
  /** Output after the last newline. */
  partial: string;
}

/**
 * The environments of one function version.
 * @example
 * const pool = new EnvironmentPool({ taskRoot, functionName: 'helloworld', max: 4, log: (line, id) => console.log(id, line) });
 * await pool.warm();
 * const { result, tail } = await pool.invoke({ endpoint: 'Greeter.Hello', body: { name: 'Ada' } }, 'req-1');
 */
export class EnvironmentPool {
  readonly options: EnvironmentPoolOptions;
  readonly #slots: Slot[] = [];
  readonly #waiting: ((slot: Slot) => void)[] = [];
  #closed = false;
  #drained: (() => void) | undefined;

  constructor(options: EnvironmentPoolOptions) {
    this.options = options;
  }

  /**
   * Starts an environment and resolves once its init is over, so the next invocation finds it warm. It is free
   * meanwhile: an invocation sent to it waits for the init, as on Lambda.
   */
  async warm(): Promise<void> {
    const slot = await this.#start(false);
    await slot.env.initialized;
  }

  /** Runs one event in a free environment. Rejects only when the pool is closed or no environment can start. */
  async invoke(event: unknown, requestId: string, clientContext?: string): Promise<PoolInvocation> {
    const arrival = { warm: this.#slots.some((s) => !s.busy), at: performance.now() };
    const slot = await this.#acquire();
    const run = this.#run(slot, arrival, event, requestId, clientContext, (env, o) => env.invoke(event, o));
    const result = await run.result;
    return { result: result as InvokeResult, tail: await run.tail };
  }

  /**
   * As `invoke`, for InvokeWithResponseStream: a response the function streams is handed over as soon as it begins;
   * its environment stays busy, and its END / REPORT lines wait, until the stream has ended (`tail` resolves then).
   */
  async invokeStreaming(event: unknown, requestId: string, clientContext?: string): Promise<PoolStreamingInvocation> {
    const arrival = { warm: this.#slots.some((s) => !s.busy), at: performance.now() };
    const slot = await this.#acquire();
    const run = this.#run(slot, arrival, event, requestId, clientContext, (env, o) => env.invokeStreaming(event, o));
    return { result: await run.result, tail: run.tail };
  }

  /** Runs the event in `slot`; `tail` never rejects (a failure to run shows in `result`). */
  #run(
    slot: Slot,
    arrival: { warm: boolean; at: number },
    event: unknown,
    requestId: string,
    clientContext: string | undefined,
    start: (
      env: LambdaEnvironment,
      options: { requestId: string; clientContext?: string },
    ) => Promise<StreamingInvokeResult>,
  ): { result: Promise<StreamingInvokeResult>; tail: Promise<string> } {
    const { version = '$LATEST', memoryMb = 128 } = this.options;
    slot.requestId = requestId;
    slot.text = '';
    this.#line(slot, `START RequestId: ${requestId} Version: ${version}`);
    const started = performance.now();
    const result = start(slot.env, { requestId, clientContext });
    const tail = (async () => {
      let outcome: InvokeResult | undefined;
      try {
        const r = await result;
        outcome = 'stream' in r ? await streamOutcome(r.requestId, r.stream.end) : r;
        const ms = performance.now() - started;
        this.#flush(slot);
        this.#line(slot, `END RequestId: ${requestId}`);
        this.#line(
          slot,
          `REPORT RequestId: ${requestId}\tDuration: ${ms.toFixed(2)} ms\tBilled Duration: ${Math.ceil(ms)} ms\tMemory Size: ${memoryMb} MB`,
        );
        const bytes = Buffer.from(slot.text);
        return bytes.subarray(Math.max(0, bytes.byteLength - TAIL_BYTES)).toString();
      } catch {
        return '';
      } finally {
        this.#release(slot);
        this.options.ended?.(ended(event, requestId, outcome, !arrival.warm, performance.now() - arrival.at));
      }
    })();
    return { result, tail };
  }

  /** Takes no more invocations, lets those already handed over finish, then stops every environment. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#slots.some((s) => s.busy) || this.#waiting.length > 0)
      await new Promise<void>((resolve) => (this.#drained = resolve));
    await Promise.all(this.#slots.splice(0).map((s) => s.env.close()));
  }

  async #acquire(): Promise<Slot> {
    if (this.#closed)
      throw new Error(`the environments of ${this.options.functionName} were replaced; invoke it again`);
    const idle = this.#slots.find((s) => !s.busy);
    if (idle) {
      idle.busy = true;
      return idle;
    }
    if (this.#slots.length < this.options.max) return this.#start(true);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  async #start(busy: boolean): Promise<Slot> {
    const { max: _max, log: _log, ...options } = this.options;
    let slot: Slot | undefined;
    const env = await LambdaEnvironment.start({
      ...options,
      onOutput: (text) => {
        if (!slot) return;
        slot.partial += text;
        const lines = slot.partial.split('\n');
        slot.partial = lines.pop()!;
        for (const line of lines) this.#line(slot, line);
      },
    });
    if (this.#closed) {
      await env.close();
      throw new Error(`the environments of ${this.options.functionName} were stopped`);
    }
    slot = { env, busy, requestId: 'init', text: '', partial: '' };
    this.#slots.push(slot);
    return slot;
  }

  #line(slot: Slot, line: string): void {
    this.options.log(line, slot.requestId);
    slot.text = `${slot.text.length > 4 * TAIL_BYTES ? slot.text.slice(-2 * TAIL_BYTES) : slot.text}${line}\n`;
  }

  /** Output the function wrote without a final newline belongs to its invocation too. */
  #flush(slot: Slot): void {
    if (slot.partial) this.#line(slot, slot.partial);
    slot.partial = '';
  }

  #release(slot: Slot): void {
    const next = this.#waiting.shift();
    if (next) return next(slot);
    slot.busy = false;
    if (this.#closed && !this.#slots.some((s) => s.busy)) this.#drained?.();
  }
}

function ended(
  event: unknown,
  requestId: string,
  result: InvokeResult | undefined,
  cold: boolean,
  ms: number,
): PoolInvocationEnd {
  const endpoint = endpointOf(event);
  const error =
    result === undefined
      ? { errorType: 'Error', errorMessage: 'no result' }
      : 'error' in result
        ? result.error
        : undefined;
  const status = error === undefined ? 200 : error.errorType === 'Sandbox.Timedout' ? 408 : 500;
  return {
    requestId,
    endpoint,
    status,
    ok: status === 200,
    cold,
    ms,
    error: error && `${error.errorType}: ${error.errorMessage}`,
  };
}

/**
 * The `endpoint` a micro-fn event names (`{"endpoint":"Greeter.Hello",…}`), read from at most its first 256 bytes when
 * the event is the Invoke request's payload as sent: a large payload is not parsed for it.
 */
function endpointOf(event: unknown): string | undefined {
  if (event instanceof Uint8Array) {
    const head = Buffer.from(event.buffer, event.byteOffset, Math.min(event.byteLength, 256)).toString('utf8');
    return /"endpoint"\s*:\s*"([A-Za-z0-9_.-]{1,128})"/.exec(head)?.[1];
  }
  const named = (event as { endpoint?: unknown } | null)?.endpoint;
  return typeof named === 'string' ? named : undefined;
}
