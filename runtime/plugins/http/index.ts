/**
 * The HTTP transport plugin (go-micro "mucp over HTTP"). Importing it loads no `node:` module: the listener
 * (node:http) is loaded when `HttpTransport.listen` is first called, so the client half runs in Workers too.
 */
export { HttpTransport, createHttpTransport, type HttpTransportOptions } from './transport.js';
export { HttpClient, type HttpClientOptions } from './client.js';
export type { HttpListener, HttpListenerOptions } from './listener.js';
