/**
 * The dashboard's live invocation feed: Server-Sent Events, one `data:` line per invocation event. A browser that
 * reads slowly (or is gone without closing) never makes serve buffer without bound: past `buffered` bytes waiting for
 * a reader, its events are dropped and counted, and once it reads again it is told how many (`event: dropped`). One
 * that stays stalled for `stalledMs` is disconnected (the page reconnects by itself).
 */
import type { ServerResponse } from 'node:http';
import type { InvocationEvent } from '../observe/event.js';

export interface FeedLimits {
  /** Feeds open at once; past it the oldest is closed. */
  clients: number;
  /** Bytes written to one feed and not yet taken by its reader, past which its events are dropped. */
  buffered: number;
  /** How long a feed may stay over `buffered` before it is closed. */
  stalledMs: number;
}

export const FEED_LIMITS: FeedLimits = { clients: 16, buffered: 256 * 1024, stalledMs: 60_000 };

/** A comment line now and then keeps proxies and the browser from closing an idle feed. */
const HEARTBEAT_MS = 15_000;

interface Reader {
  res: ServerResponse;
  /** Events not sent since it stalled; told once it drains. */
  dropped: number;
  /** When it went over the bound (0: it is not). */
  stalledSince: number;
}

/** Every open feed: `send` writes an event to each, within the bounds. */
export class Feed {
  readonly #limits: FeedLimits;
  readonly #readers = new Set<Reader>();
  readonly #heartbeat: ReturnType<typeof setInterval>;
  /** Events dropped in all, since serve started (for tests and the page's notice). */
  dropped = 0;

  constructor(limits: Partial<FeedLimits> = {}) {
    this.#limits = { ...FEED_LIMITS, ...limits };
    this.#heartbeat = setInterval(() => this.#write(': keep-alive\n\n'), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Makes `res` a feed: event-stream headers, then events until the browser goes. */
  add(res: ServerResponse): void {
    if (this.#readers.size >= this.#limits.clients) {
      const oldest = this.#readers.values().next().value!;
      this.#readers.delete(oldest);
      oldest.res.end();
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.write('retry: 2000\n\n');
    const reader: Reader = { res, dropped: 0, stalledSince: 0 };
    this.#readers.add(reader);
    res.on('drain', () => {
      reader.stalledSince = 0;
      if (reader.dropped === 0) return;
      res.write(`event: dropped\ndata: ${JSON.stringify({ dropped: reader.dropped })}\n\n`);
      reader.dropped = 0;
    });
    res.on('close', () => this.#readers.delete(reader));
  }

  /** Writes one invocation to every feed. */
  send(event: InvocationEvent): void {
    if (this.#readers.size === 0) return;
    this.#write(`data: ${JSON.stringify(event)}\n\n`, true);
  }

  /** The open feeds and the most bytes one of them holds unread (what the bound caps). */
  stats(): { clients: number; buffered: number; dropped: number } {
    let buffered = 0;
    for (const r of this.#readers) buffered = Math.max(buffered, r.res.writableLength);
    return { clients: this.#readers.size, buffered, dropped: this.dropped };
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const r of this.#readers) r.res.end();
    this.#readers.clear();
  }

  #write(text: string, counted = false): void {
    const now = Date.now();
    for (const reader of this.#readers) {
      const { res } = reader;
      if (res.writableLength + text.length > this.#limits.buffered) {
        if (reader.stalledSince === 0) reader.stalledSince = now;
        else if (now - reader.stalledSince > this.#limits.stalledMs) {
          this.#readers.delete(reader);
          res.destroy();
          continue;
        }
        if (counted) {
          reader.dropped++;
          this.dropped++;
        }
        continue;
      }
      res.write(text);
    }
  }
}
