/**
 * Streams (issue 16): a stream is the one invocation of a one-shot function; the function ends once the stream has
 * closed on both sides. This file holds the contract every transport and host builds on; the handler API lives in
 * router.ts (which endpoints stream), server.ts (running them) and client.ts (`client.stream`).
 *
 * - **server** stream: the handler returns an async iterable (an `async *Method(req, ctx)`); the caller gets each value
 *   as it is yielded.
 * - **client** stream: the handler's request is an async iterable of messages (declared in the definition's `streams`);
 *   it returns one reply.
 * - **bidi**: both.
 *
 * On the wire a message is one encoded value (the JSON codec's bytes: streams are JSON). Metadata set on
 * `ctx.responseMetadata` before the first yield travels with the first reply (as headers); `ctx.trailers` set until
 * the end travels after the last. An error in the middle ends the stream and reaches the caller as go-micro error JSON.
 */
import type { MicroError } from './errors.js';
import type { Metadata } from './metadata.js';

/** How an endpoint streams. Absent (a plain endpoint): one request, one reply. */
export type StreamKind = 'server' | 'client' | 'bidi';

/** The registry metadata key an endpoint's StreamKind is listed under (`EndpointRecord.metadata.stream`). */
export const STREAM_METADATA = 'stream';

/**
 * Request metadata that marks a request stream as carrying a **server** stream's one request as its first message
 * (a WebSocket, where every message is a frame: `micro-fn run`'s and serve's listener set it). Without it, a request
 * stream to a server endpoint is refused (400), as it was. Client and bidi endpoints ignore it.
 */
export const REQUEST_IN_STREAM = 'micro-request-in-stream';

/** True when `kind` streams the request (client and bidi). */
export function streamsRequest(kind: StreamKind | undefined): boolean {
  return kind === 'client' || kind === 'bidi';
}

/** True when `kind` streams the reply (server and bidi). */
export function streamsReply(kind: StreamKind | undefined): boolean {
  return kind === 'server' || kind === 'bidi';
}

/** How a stream ended, as its reader learns it once the messages are done. */
export interface StreamEnd {
  /** Metadata the handler set after its first reply (`ctx.trailers`). */
  trailers: Metadata;
  /** Set when the stream ended with an error: no message follows it. */
  error?: MicroError;
}

/**
 * A stream of encoded messages as it travels between caller, transports, hosts and the handler: one Uint8Array per
 * message. Pulled, never pushed: a producer makes the next message only when the reader asks for it (backpressure),
 * so nothing on the way buffers an unbounded stream.
 *
 * Iterating it yields the messages. The iteration ends when the stream ended cleanly, and throws the MicroError it
 * ended with otherwise; `end` says the same (and carries the trailers) once the messages are done. A reader that
 * stops early (`break`, or `return()` on the iterator) cancels the stream: the producer's side sees it (the handler's
 * `ctx.signal` fires, the caller's iteration ends).
 */
export interface MessageStream extends AsyncIterable<Uint8Array> {
  readonly end: Promise<StreamEnd>;
}
