/**
 * Streams over NATS (issue 16): one stream is one invocation, carried by a pair of inboxes, one per side. Each side
 * subscribes `<inbox>.*` and sends control messages to the other's `<inbox>.c` with its own `.c` subject as the reply
 * subject, so every message tells the receiver where to answer. The wire, also in the README's wire-format section:
 *
 * - Control messages carry `micro-stream: <op>`: `open` (the request of a call whose request streams, or the head of
 *   a streamed reply: its metadata as headers, body empty), `end` (`micro-seq: N+1` after N messages; trailers as
 *   headers, or the error as `micro-error` + error JSON body), `credit` (`micro-credit: N`, `micro-credit-bytes: B`: the
 *   reader lets the sender send up to message N, and start one while it sent fewer than B bytes in all), `cancel` and `ping`.
 * - Data message N (one encoded message, N counting from 1) goes to `<inbox>.N`, without headers or reply subject.
 *   To a peer whose subject is no stream inbox it goes as `micro-stream: data` with `micro-seq: N` (both are read).
 * - Batches: a reader whose `credit` carries `micro-batch: B` takes messages N to M in one NATS message on
 *   `<inbox>.N-M` of at most B bytes, each message as its length (4 bytes, big-endian) then its bytes. A sender
 *   batches what its producer made back to back; one that never saw `micro-batch` sends one message each.
 * - Flow control: a sender sends at most the credit granted (STREAM_WINDOW messages and STREAM_WINDOW_BYTES bytes,
 *   plus the one message that crosses it, ahead of the reader), and pulls the next message from its source only when
 *   it may send it; a receiver buffers at most the window. A gap in the
 *   sequence, or a message past the credit, ends the stream with an error: nothing is skipped silently.
 * - Liveness: each side sends a `ping` when it sent nothing for a heartbeat, and takes the other side for gone after
 *   the idle limit without a message, or at once when NATS answers one of its messages with no responders (the other
 *   side's subscription is gone: its process died or its connection closed). A handler whose caller is gone has its
 *   stream cancelled; a caller whose handler is gone gets an error.
 * - `cancel` from the caller ends the whole invocation (the handler's stream is cancelled, its request stream
 *   fails); from the handler it only means "I no longer read your request stream" (the caller stops sending).
 */
import type { MsgHdrs } from 'nats';
import type { Metadata } from '../../core/metadata.js';
import { metadataOf, SERVICE_ERROR, SERVICE_ERROR_CODE } from './headers.js';

/** The header naming a stream message's op. */
export const STREAM_HEADER = 'micro-stream';
/** The sequence number of a `data` or `end` message. */
export const SEQ_HEADER = 'micro-seq';
/** A `credit` message's grant: the sender may send messages up to this sequence number. */
export const CREDIT_HEADER = 'micro-credit';
/** ... and start a message while it has sent fewer bytes than this (counted from the first message). */
export const CREDIT_BYTES_HEADER = 'micro-credit-bytes';
/** A `credit` message's offer to take batches of messages up to this many bytes (`<inbox>.N-M`). */
export const BATCH_HEADER = 'micro-batch';
/** The bytes of a batch a reader takes: 64 KiB. */
export const STREAM_BATCH_BYTES = 64 * 1024;

/** The ops of stream messages. */
export const StreamOp = {
  open: 'open',
  data: 'data',
  end: 'end',
  credit: 'credit',
  cancel: 'cancel',
  ping: 'ping',
} as const;
export type StreamOp = (typeof StreamOp)[keyof typeof StreamOp];

/** Messages a sender may have ahead of its reader: the bound of every stream buffer on either side. */
export const STREAM_WINDOW = 1024;
/**
 * Bytes a sender may have ahead of its reader, besides the message count: a receiver buffers at most this plus one
 * message (a message is at most the server's max_payload, 1 MiB by default).
 */
export const STREAM_WINDOW_BYTES = 1024 * 1024;
/** Milliseconds without sending after which a side sends a `ping`. */
export const STREAM_HEARTBEAT = 1000;
/** Milliseconds without a message from the other side after which it is taken for gone. */
export const STREAM_IDLE_LIMIT = 5000;

/** Flow control and liveness of NATS streams; the defaults suit most uses. */
export interface NatsStreamOptions {
  /** Messages a reader lets its sender have in flight (and so buffers at most). Default STREAM_WINDOW (1024). */
  window?: number;
  /** Bytes a reader lets its sender have in flight (it buffers at most this plus one message). Default 1 MiB. */
  windowBytes?: number;
  /** Milliseconds of silence after which a side sends a ping. Default STREAM_HEARTBEAT (1000). */
  heartbeat?: number;
  /** Milliseconds of silence from the other side after which it is gone. Default STREAM_IDLE_LIMIT (5000). */
  idle?: number;
}

/** The last token of a side's control subject (`<inbox>.c`); data messages go to `<inbox>.<seq>`. */
export const CONTROL_TOKEN = '.c';
/** Headers of stream framing: never metadata or trailers. */
export const FRAMING: ReadonlySet<string> = new Set([
  STREAM_HEADER,
  SEQ_HEADER,
  CREDIT_HEADER,
  CREDIT_BYTES_HEADER,
  BATCH_HEADER,
]);
/** ... nor the error's copies: what an `end` carries besides its trailers. */
export const NOT_TRAILERS: ReadonlySet<string> = new Set([
  ...FRAMING,
  'micro-error',
  SERVICE_ERROR.toLowerCase(),
  SERVICE_ERROR_CODE.toLowerCase(),
]);

/** The op of a message, or undefined for a message that is no stream message (a plain reply). */
export function streamOp(h: MsgHdrs | undefined): string | undefined {
  // Written in lower case by this file alone: an exact lookup (a plain call's reply or request pays a map lookup).
  return h?.get(STREAM_HEADER) || undefined;
}

/** Metadata of a message's headers without the stream framing. */
export function streamMetadata(h: MsgHdrs | undefined): Metadata {
  return metadataOf(h, FRAMING);
}

/** A batch's bytes: each message as its length (4 bytes, big-endian), then its bytes. */
export function packBatch(messages: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const m of messages) size += 4 + m.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const m of messages) {
    view.setUint32(at, m.byteLength);
    out.set(m, at + 4);
    at += 4 + m.byteLength;
  }
  return out;
}

/** The `count` messages of a batch (views of `body`), or undefined when its framing does not hold exactly that many. */
export function unpackBatch(body: Uint8Array, count: number): Uint8Array[] | undefined {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < body.byteLength) {
    if (at + 4 > body.byteLength || out.length === count) return undefined;
    const length = view.getUint32(at);
    if (at + 4 + length > body.byteLength) return undefined;
    out.push(body.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return out.length === count ? out : undefined;
}
