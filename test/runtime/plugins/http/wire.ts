/** Helpers for the HTTP listener tests: requests on their own connections, raw bytes, a recording handler. */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import type { RequestHandler, ServerRequest } from '../../../../runtime/core/index.js';
import {
  createHttpListener,
  type HttpListener,
  type HttpListenerOptions,
} from '../../../../runtime/plugins/http/listener.js';
import { serverResponse } from '../../../contracts/transport.js';
import { withTimeout } from '../../../helpers.js';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on its own connection (no agent, no pooling). */
export function send(
  address: string,
  options: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string | Uint8Array;
    chunks?: Uint8Array[];
  } = {},
): Promise<Reply> {
  const url = new URL(options.path ?? '/', address);
  const promise = new Promise<Reply>((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method ?? 'POST', headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end(options.body);
  });
  return withTimeout(promise, 5000, `${options.method ?? 'POST'} ${url.pathname}`);
}

/** Raw bytes on a fresh socket; resolves with everything the server wrote before it closed the connection. */
export function raw(address: string, text: string): Promise<string> {
  const { hostname, port } = new URL(address);
  const promise = new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (data += c));
    socket.on('close', () => resolve(data));
    socket.on('error', (err) => (data ? resolve(data) : reject(err)));
  });
  return withTimeout(promise, 5000, 'raw request');
}

export const mucp = (endpoint: string, extra: Record<string, string> = {}) => ({
  'Micro-Service': 'greeter',
  'Micro-Endpoint': endpoint,
  'Content-Type': 'application/json',
  ...extra,
});
export const json = (r: Reply) => JSON.parse(r.body) as unknown;

/** A handler that records requests and echoes the body with a little metadata. */
export function recorder() {
  const seen: ServerRequest[] = [];
  const handler: RequestHandler = async (request, reply) => {
    seen.push(request);
    await reply(serverResponse(request.body.byteLength > 0 ? request.body : '{}', { 'X-Endpoint': request.endpoint }));
  };
  return { seen, handler };
}

let open: HttpListener[] = [];

/** Closes `listener` with the others in closeAll(). */
export function track(listener: HttpListener): HttpListener {
  open.push(listener);
  return listener;
}
export async function listen(handler: RequestHandler, options: HttpListenerOptions = {}): Promise<HttpListener> {
  const listener = await createHttpListener(handler, { address: '127.0.0.1:0', ...options });
  open.push(listener);
  return listener;
}
export async function closeAll(): Promise<void> {
  const listeners = open;
  open = [];
  await withTimeout(Promise.all(listeners.map((l) => l.close())), 5000, 'closing listeners');
}
