/**
 * Bidi echo round trips over WebSocket (websocket.ts) against the same over HTTP/1.1 full duplex (client.stream with
 * `send`), one message in flight at a time, on the same listener in one process. The WebSocket client is a minimal
 * one written here (Node 20's WebSocket needs a flag): masked text frames out, server frames parsed.
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
// The package as users load it (dist/, built by `npm run bench`), not the sources through tsx.
import { createClient, createService } from 'micro-fn';
import { createHttpTransport } from 'micro-fn/http';
import { createMemoryRegistry } from 'micro-fn/memory';
import { median, ratio } from './stats.js';

/** A WebSocket to `address` + `path`, open; `roundTrip` sends one text frame and resolves at the next text frame. */
async function openWs(
  address: string,
  path: string,
): Promise<{ roundTrip(text: string): Promise<string>; socket: Socket }> {
  const url = new URL(address);
  const socket = connect(Number(url.port), url.hostname);
  socket.setNoDelay(true);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
  );
  let buf: Buffer = Buffer.alloc(0);
  let opened = false;
  let waiting: ((text: string) => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!opened) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      opened = true;
      buf = buf.subarray(end + 4);
    }
    while (buf.length >= 2) {
      let length = buf[1]! & 0x7f;
      let at = 2;
      if (length === 126) ((length = buf.readUInt16BE(2)), (at = 4));
      if (buf.length < at + length) return;
      const opcode = buf[0]! & 0x0f;
      const data = buf.subarray(at, at + length).toString();
      buf = buf.subarray(at + length);
      if (opcode === 1) waiting?.(data);
    }
  });
  const mask = Buffer.alloc(4); // a zero mask: the bit is set, the payload unchanged
  return {
    socket,
    roundTrip(text: string) {
      const payload = Buffer.from(text);
      const head = Buffer.from([0x81, 0x80 | payload.length]);
      return new Promise((resolve) => {
        waiting = resolve;
        socket.write(Buffer.concat([head, mask, payload]));
      });
    },
  };
}

export async function benchWebSocket(n = 5000, rounds = 5): Promise<string[]> {
  const registry = createMemoryRegistry();
  const transport = createHttpTransport();
  const service = createService(
    {
      name: 'stream',
      handlers: {
        Chat: {
          async *Echo(inbox: AsyncIterable<unknown>) {
            for await (const m of inbox) yield m;
          },
        },
      },
      streams: { 'Chat.Echo': 'bidi' },
    },
    { registry, transport, address: '127.0.0.1:0' },
  );
  await service.start();
  const [node] = (await registry.getService('stream'))[0]!.nodes;
  const client = createClient({ registry, transports: [transport], timeout: 60_000 });
  const ws: number[] = [];
  const duplex: number[] = [];
  try {
    for (let r = 0; r <= rounds; r++) {
      const socket = await openWs(node!.address, '/stream/Chat.Echo');
      let start = performance.now();
      for (let i = 0; i < n; i++) await socket.roundTrip(String(i));
      if (r > 0) ws.push((n / (performance.now() - start)) * 1000); // round 0 warms up
      socket.socket.destroy();

      const stream = client.stream<number, number>('stream', 'Chat.Echo', undefined, { send: true });
      const it = stream[Symbol.asyncIterator]();
      start = performance.now();
      for (let i = 0; i < n; i++) {
        await stream.send(i);
        await it.next();
      }
      if (r > 0) duplex.push((n / (performance.now() - start)) * 1000);
      await stream.close();
      await it.return?.();
    }
    const rate = (x: number) => `${Math.round(x).toLocaleString('en')}/s`;
    return [
      `WebSocket (raw client)            ${rate(median(ws))} round trips  (n=${n}, median of ${rounds})`,
      `HTTP/1.1 full duplex (client.stream, send)  ${rate(median(duplex))} round trips`,
      `WebSocket vs full duplex: ${ratio(median(ws), median(duplex))}`,
    ];
  } finally {
    await service.stop();
    await transport.close?.();
    await registry.close?.();
  }
}
