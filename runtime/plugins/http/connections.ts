/**
 * The HTTP listener's cap on open connections. Past the cap, a new connection takes the place of the oldest one
 * that has no request in progress (one that sent nothing yet or only part of its headers, or a keep-alive
 * connection between requests), so connections held open and idle cannot lock callers out; when every
 * connection is busy with a request, the new one is refused. Node only (it holds sockets).
 */
import type { ServerResponse as NodeResponse } from 'node:http';
import type { Socket } from 'node:net';

/** What the listener does with a connection the cap refuses (every other connection is busy). */
export type Refuse = (socket: Socket) => void;

export class ConnectionCap {
  readonly max: number;
  readonly #refuse: Refuse;
  /** Requests in progress per open socket. */
  readonly #open = new Map<Socket, number>();
  /** Sockets with no request in progress, oldest first (a Set keeps insertion order). */
  readonly #waiting = new Set<Socket>();

  constructor(max: number, refuse: Refuse) {
    this.max = max;
    this.#refuse = refuse;
  }

  /** Connections open now. */
  get size(): number {
    return this.#open.size;
  }

  /** A new connection (the server's 'connection' event). */
  readonly accept = (socket: Socket): void => {
    if (this.#open.size >= this.max) {
      const oldest = this.#waiting.values().next().value as Socket | undefined;
      if (!oldest) return this.#refuse(socket);
      this.#forget(oldest);
      oldest.destroy();
    }
    this.#open.set(socket, 0);
    this.#waiting.add(socket);
    socket.once('close', () => this.#forget(socket));
  };

  /** A request arrived on `res`'s connection: busy until its response is done. */
  busy(socket: Socket, res: NodeResponse): void {
    const requests = this.#open.get(socket);
    if (requests === undefined) return;
    this.#open.set(socket, requests + 1);
    this.#waiting.delete(socket);
    res.once('close', () => {
      const left = (this.#open.get(socket) ?? 1) - 1;
      if (!this.#open.has(socket)) return;
      this.#open.set(socket, left);
      // Waiting again: the newest of the waiting ones, so it is evicted last.
      if (left === 0) this.#waiting.add(socket);
    });
  }

  /** The connection was upgraded (a WebSocket): busy until it closes, never taken for an idle one. */
  upgraded(socket: Socket): void {
    this.#waiting.delete(socket);
  }

  #forget(socket: Socket): void {
    this.#open.delete(socket);
    this.#waiting.delete(socket);
  }
}
