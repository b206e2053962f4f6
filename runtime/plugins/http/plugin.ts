/**
 * The HTTP plugin's descriptors: mucp over HTTP for `http://` and `https://` node addresses. On Node the transport
 * can also listen (node:http, loaded when it does); on a Web platform only its fetch client is carried, so a
 * Worker's or Deno's bundle never reaches node:http.
 */
import type { TransportPlugin } from '../../core/plugin.js';

const summary =
  'mucp over HTTP (go-micro compatible): POST / with Micro-* headers, or POST /<service>/<Service.Method>';

/** Calls and listens, on Node. */
export const httpTransport: TransportPlugin = {
  kind: 'transport',
  name: 'http',
  summary,
  schemes: ['http', 'https'],
  platforms: ['node'],
  defaultOn: ['node'],
  create: async () => (await import('./transport.js')).createHttpTransport(),
};

/** Calls through fetch, on Web platforms (listening is the host's own fetch handler there: see fetch.ts). */
export const httpFetchTransport: TransportPlugin = {
  kind: 'transport',
  name: 'http',
  summary,
  schemes: ['http', 'https'],
  platforms: ['web'],
  defaultOn: ['web'],
  async create() {
    const { HttpClient } = await import('./client.js');
    const client = new HttpClient();
    return { schemes: ['http', 'https'], call: (node, request, options) => client.call(node, request, options) };
  },
};
