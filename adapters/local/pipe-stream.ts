/**
 * A stream over the function pipe (ipc.ts), the same code on both ends: `PipeReader` is the reading side (a
 * MessageStream that grants credit as it is pulled), `writeStream` the writing side (sends a MessageStream's messages
 * within the credit it was granted). Serve reads a function's reply stream and writes its caller's request stream;
 * the function process does the opposite. Imports only runtime/core: it ships inside the function's bundle.
 */
import { MicroError, parseError } from '../../runtime/core/errors.js';
import { Metadata } from '../../runtime/core/metadata.js';
import type { MessageStream, StreamEnd } from '../../runtime/core/stream.js';
import { readsText } from '../../runtime/core/server-stream.js';
import { SlabEncoder } from '../../runtime/core/slab-encoder.js';
import { STREAM_WINDOW, type IpcCancel, type IpcCredit, type IpcData, type IpcEnd, type IpcStream } from './ipc.js';

const decoder = new TextDecoder();

/** Characters a writer leaves unwritten in the pipe at most before it waits for the pipe: 64 KiB. */
export const FLUSH = 64 * 1024;

/**
 * Characters of messages a writer gathers into one pipe line at most: 16 KiB. Messages a producer makes back to back
 * (a generator yielding without waiting) travel together, one line and one write for many; a producer that waits
 * between messages sends each as it comes. 16 KiB is what serve's HTTP writer gathers into one chunk too.
 */
export const BATCH = 16 * 1024;

/** The code of a stream its reader stopped: nginx's "client closed request". */
export const CANCELLED = 499;

/**
 * What a message costs of the credit: its characters, and at least 1 (no JSON value is empty, yet a message of none
 * must not come free: a writer could send any number of them within any window).
 */
const cost = (body: string): number => body.length || 1;

/**
 * The reading side of a stream on the pipe: holds at most `window` characters of messages (the credit it granted) plus
 * the one message that overdrew it, grants more as its own reader pulls them, and says `cancel` when that reader stops early. The pipe's reader feeds it with `data`,
 * `end` and, when the writer is gone (its process died, its time ran out), `fail`.
 */
export class PipeReader implements MessageStream {
  readonly end: Promise<StreamEnd>;
  /** Messages received: for the request log. */
  count = 0;
  readonly #send: (message: IpcCredit | IpcCancel) => void;
  readonly #window: number;
  readonly #id: string;
  /** Messages held, read from `#head` on (an index, not shift(): that copies a long array each time). */
  #queue: string[] = [];
  #head = 0;
  #ended: StreamEnd | undefined;
  #resolveEnd!: (end: StreamEnd) => void;
  #wake: (() => void) | undefined;
  /** Characters pulled since the last grant. */
  #pulled = 0;
  /** Characters granted and not yet received: a message may come only while it is above 0. */
  #outstanding: number;
  #iterating = false;
  /** Its reader stopped it (cancel). */
  #stopped = false;
  readonly #encoder = new SlabEncoder();

  /** `id` names who raised an error that came without one (the function's name). Grants `window` at once. */
  constructor(send: (message: IpcCredit | IpcCancel) => void, id: string, window = STREAM_WINDOW) {
    this.#send = send;
    this.#id = id;
    this.#window = window;
    this.#outstanding = window;
    this.end = new Promise((resolve) => (this.#resolveEnd = resolve));
    send({ type: 'credit', n: window });
  }

  /** True while its reader waits for a message (it has read all held). */
  get waiting(): boolean {
    return this.#wake !== undefined;
  }

  /** True once the stream has ended (cleanly, with an error, or cancelled). */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /**
   * Takes one message of the pipe. False when the writer sent beyond the credit it was granted: it broke the protocol,
   * and the stream fails (its owner ends the writer).
   */
  push(body: string): boolean {
    if (this.#ended) return true; // cancelled: what was on its way is dropped
    if (typeof body !== 'string') {
      this.fail(new MicroError(this.#id, 500, `${this.#id} sent a stream message that is not text`));
      return false;
    }
    if (this.#outstanding <= 0) {
      this.fail(new MicroError(this.#id, 500, `${this.#id} sent more stream messages than it was granted`));
      return false;
    }
    // A message is one JSON value, which the codec writes without a raw line break: one would split it in two on a
    // line-framed wire (NDJSON, SSE), letting the writer forge messages there.
    if (body.includes('\n') || body.includes('\r')) {
      this.fail(new MicroError(this.#id, 500, `${this.#id} sent a stream message with a line break in it`));
      return false;
    }
    this.count++;
    this.#outstanding -= cost(body);
    this.#queue.push(body);
    this.#poke();
    return true;
  }

  /** Handles a stream message of the pipe (`data`, one message or several, or `end`); false when it broke the protocol. */
  receive(message: IpcStream): boolean {
    if (message.type === 'data') {
      if (!Array.isArray(message.bodies)) return this.push(message.body as string);
      for (const body of message.bodies) if (!this.push(body)) return false;
      return true;
    }
    if (message.type === 'end') this.finish(message);
    return true;
  }

  /** The writer's end: the messages still held are read first. */
  finish(end: Pick<IpcEnd, 'trailers' | 'error'>): void {
    this.#settle({
      trailers: new Metadata(end.trailers ?? {}),
      ...(end.error ? { error: parseError(end.error, 500, this.#id) } : {}),
    });
  }

  /** The writer is gone: the stream ends with `error` once the messages held are read. */
  fail(error: MicroError): void {
    this.#settle({ trailers: new Metadata(), error });
  }

  #settle(end: StreamEnd): void {
    if (this.#ended) return;
    this.#ended = end;
    this.#resolveEnd(end);
    this.#poke();
  }

  #poke(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The reader stops early: the writer is told, what is held goes. */
  cancel(): void {
    if (this.#ended) return;
    this.#stopped = true;
    this.#queue = [];
    this.#head = 0;
    this.#settle({
      trailers: new Metadata(),
      error: new MicroError(this.#id, CANCELLED, 'the stream was cancelled by its reader', { retryable: false }),
    });
    this.#send({ type: 'cancel' });
  }

  /** The next message held, if any. */
  #take(): string | undefined {
    if (this.#head === this.#queue.length) return undefined;
    const body = this.#queue[this.#head++]!;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return body;
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#iterating) throw new TypeError('a stream is read once');
    this.#iterating = true;
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        for (;;) {
          const body = this.#take();
          if (body !== undefined) {
            // Credit goes back in batches of half the window: fewer lines, and the writer never waits on an empty pipe.
            this.#pulled += cost(body);
            if (this.#pulled >= this.#window / 2 && !this.#ended) {
              this.#outstanding += this.#pulled;
              this.#send({ type: 'credit', n: this.#pulled });
              this.#pulled = 0;
            }
            return { done: false, value: this.#encoder.encode(body) };
          }
          const ended = this.#ended;
          if (ended) {
            // Its own reader's cancel ends its iteration cleanly; any other error is thrown (a 499 too: the writer's
            // side went, and a request cut short must not look whole to its handler).
            if (ended.error && !this.#stopped) throw ended.error;
            return { done: true, value: undefined };
          }
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<Uint8Array>> => {
        this.cancel();
        return { done: true, value: undefined };
      },
    };
  }
}

/** The credit a writer was granted, and the wait for more. */
export class Credit {
  #n = 0;
  #wake: (() => void) | undefined;
  #cancelled = false;
  #onCancel: (() => void) | undefined;

  /** Calls `listener` once when the reader cancels (at once if it has). */
  onCancel(listener: () => void): void {
    if (this.#cancelled) listener();
    else this.#onCancel = listener;
  }

  /** True once the reader cancelled the stream. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Handles `credit` and `cancel` from the reader. */
  receive(message: IpcCredit | IpcCancel): void {
    if (message.type === 'cancel' && !this.#cancelled) {
      this.#cancelled = true;
      const listener = this.#onCancel;
      this.#onCancel = undefined;
      listener?.();
    } else if (message.type === 'credit') if (Number.isInteger(message.n) && message.n > 0) this.#n += message.n;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** True while a message may be made and sent (some credit is left), and the stream is not cancelled. */
  get open(): boolean {
    return this.#n > 0 && !this.#cancelled;
  }

  /** Resolves true once a message may be made and sent (some credit is left), false once the stream is cancelled. */
  async wait(): Promise<boolean> {
    while (this.#n <= 0 && !this.#cancelled) await new Promise<void>((resolve) => (this.#wake = resolve));
    return !this.#cancelled;
  }

  /** Takes a message of `length` characters off the credit (it may overdraw: the next waits until it is back). */
  spend(length: number): void {
    this.#n -= length;
  }

  /** Ends a wait without credit (the writer's side is going away). */
  stop(): void {
    this.receive({ type: 'cancel' });
  }
}

/** How writeStream gathers and waits. */
export interface WriteStreamOptions {
  /** Characters it leaves unwritten in the pipe at most (then it waits for the pipe); default FLUSH. */
  flush?: number;
  /**
   * Characters of messages made back to back it sends as one line (IpcData's `bodies`) at most; default BATCH. 0: one
   * line per message (IpcData's `body`), for a reader that takes nothing else (a function bundled before batches).
   */
  batch?: number;
  /**
   * Sends the first message without waiting for credit: for a reader certain to exist by the time it arrives and to
   * grant a whole window (serve makes a reply stream's reader as it reads the reply line, before the lines after it).
   * Waiting for that grant would put a round trip between the two processes in front of the first item.
   */
  early?: boolean;
}

/**
 * Sends the messages of `stream` over the pipe within the credit granted (in characters), then its end (trailers, or
 * the error it failed with; `toError` turns what its iteration threw into one). The first message goes at once; those
 * the producer makes back to back go together, up to `batch` characters a line, and a batch goes as soon as the
 * producer waits (or the credit runs out). A cancel from the reader calls the stream's `return()` (its producer stops),
 * drops what was gathered and sends no end. Resolves with how many messages went, and whether it was cancelled, once
 * the last line was handed to the pipe.
 */
export async function writeStream(
  stream: AsyncIterable<Uint8Array> & { end?: Promise<StreamEnd> },
  credit: Credit,
  send: (message: IpcStream) => Promise<void>,
  toError: (err: unknown) => MicroError,
  { flush = FLUSH, batch = BATCH, early = false }: WriteStreamOptions = {},
): Promise<{ count: number; cancelled: boolean }> {
  const iterator = stream[Symbol.asyncIterator]();
  // A handler's reply stream hands its messages as JSON text: no bytes made only to be decoded again.
  const nextText = readsText(iterator)
    ? () => iterator.nextText()
    : async (): Promise<IteratorResult<string>> => {
        const next = await iterator.next();
        return next.done ? next : { done: false, value: decoder.decode(next.value) };
      };
  let count = 0;
  let last: Promise<void> = Promise.resolve();
  let unwritten = 0;
  // At once, even while the producer works on its next message: a handler's signal fires when its caller goes.
  let returned: Promise<unknown> | undefined;
  credit.onCancel(() => (returned = Promise.resolve(iterator.return?.()).catch(() => {})));
  /** Messages gathered for the next line, and their characters. */
  let bodies: string[] = [];
  let gathered = 0;
  let scheduled = false;
  const sendGathered = (): void => {
    scheduled = false;
    if (bodies.length === 0) return;
    const message: IpcData = bodies.length === 1 ? { type: 'data', body: bodies[0]! } : { type: 'data', bodies };
    const length = gathered;
    bodies = [];
    gathered = 0;
    if (credit.cancelled) return; // the reader stopped: what was gathered goes
    unwritten += length;
    last = send(message).finally(() => (unwritten -= length));
  };
  try {
    for (;;) {
      // Credit first: the producer makes its next message only once the reader can take it (no wait while it can),
      // except an `early` first message.
      if ((count > 0 || !early) && !credit.open) {
        sendGathered();
        if (!(await credit.wait())) break;
      }
      // Past `flush` characters not yet written (gathered included) the writer waits for the pipe: its own buffer stays
      // bounded whatever credit a reader gives, and a producer that never waits (a generator yielding at once) lets
      // the event loop run: the pipe is written, a cancel is read.
      if (unwritten + gathered > flush) {
        sendGathered();
        await last.catch(() => {});
      }
      if (credit.cancelled) break;
      const next = await nextText();
      if (next.done || credit.cancelled) break;
      const body = next.value;
      credit.spend(cost(body));
      bodies.push(body);
      gathered += body.length;
      // The first at once (the caller waits for it); then a line once a batch is full, or once the producer waits:
      // a tick runs only when this turn's microtasks are done, i.e. when its next message is not ready at once.
      if (count++ === 0 || gathered >= batch) sendGathered();
      else if (!scheduled) {
        scheduled = true;
        process.nextTick(sendGathered);
      }
    }
  } catch (err) {
    sendGathered();
    await last.catch(() => {});
    if (credit.cancelled) return { count, cancelled: true };
    await send({ type: 'end', trailers: {}, error: toError(err).toJSON() });
    return { count, cancelled: false };
  }
  sendGathered();
  if (credit.cancelled) {
    await returned;
    await last.catch(() => {});
    return { count, cancelled: true };
  }
  const end = await stream.end;
  await last.catch(() => {});
  await send({
    type: 'end',
    trailers: end?.trailers.toJSON() ?? {},
    ...(end?.error ? { error: end.error.toJSON() } : {}),
  });
  return { count, cancelled: false };
}
