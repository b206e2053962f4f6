/** Requests on connections opened first, then written all at once: what a one-shot instance meets under load. */
import { connect, type Socket } from 'node:net';
import { withTimeout } from '../../helpers.js';

/** What one connection got: the status line's code, or the socket error's code, or `closed` without an answer. */
export type BurstResult = number | string;

/**
 * Opens `n` connections to `address`, waits until every one is connected, then writes one POST on each in the
 * same tick, and resolves with what each got back.
 */
export async function burst(address: string, path: string, body: string, n = 20): Promise<BurstResult[]> {
  const { hostname, port } = new URL(address);
  const sockets = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connect(Number(port), hostname, () => resolve(socket));
          socket.once('error', reject);
        }),
    ),
  );
  const text =
    `POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const answers = sockets.map(
    (socket) =>
      new Promise<BurstResult>((resolve) => {
        let data = '';
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => (data += chunk));
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        socket.on('close', () => {
          const status = /^HTTP\/1\.1 (\d{3})/.exec(data);
          resolve(status ? Number(status[1]) : 'closed');
        });
      }),
  );
  for (const socket of sockets) socket.write(text);
  return withTimeout(Promise.all(answers), 10_000, `${n} requests written at once`);
}

/** `results` counted by kind, e.g. `{ 200: 1, 503: 19 }`. */
export function tally(results: BurstResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}
