/**
 * The AWS event stream encoding (`application/vnd.amazon.eventstream`) of InvokeWithResponseStream's reply, as the
 * SDK decodes it: each event is one message of
 *
 * ```
 * total length (uint32) | headers length (uint32) | prelude CRC32 | headers | payload | message CRC32
 * ```
 *
 * all big-endian, the prelude CRC over the first 8 bytes, the message CRC over everything before it. A header is its
 * name's length (1 byte), the name, its type (7: string), the value's length (uint16), the value. Every message here
 * is an event (`:message-type` event) named by `:event-type`: `PayloadChunk` (the bytes as they came) and, last,
 * `InvokeComplete` (JSON `{ErrorCode?, ErrorDetails?, LogResult?}`).
 * https://docs.aws.amazon.com/lambda/latest/api/API_InvokeWithResponseStream.html
 * `micro-fn serve` only.
 */

/** The content type of an event-stream reply. */
export const EVENT_STREAM_CONTENT_TYPE = 'application/vnd.amazon.eventstream';

/** Largest payload of one PayloadChunk message: a longer chunk is split (the encoding allows 16 MiB per message). */
export const MAX_CHUNK_PAYLOAD = 64 * 1024;

const STRING_HEADER = 7;
const PRELUDE = 12;

/** What InvokeComplete says: nothing on success; the function's error; the tail of the log when asked for. */
export interface InvokeComplete {
  ErrorCode?: string;
  ErrorDetails?: string;
  LogResult?: string;
}

/** The PayloadChunk messages of `bytes` (more than one when longer than MAX_CHUNK_PAYLOAD). */
export function payloadChunks(bytes: Uint8Array): Buffer[] {
  const messages: Buffer[] = [];
  for (let at = 0; at < bytes.byteLength; at += MAX_CHUNK_PAYLOAD)
    messages.push(eventMessage('PayloadChunk', 'application/octet-stream', bytes.subarray(at, at + MAX_CHUNK_PAYLOAD)));
  return messages;
}

/** The InvokeComplete message that ends the reply. */
export function invokeComplete(complete: InvokeComplete): Buffer {
  return eventMessage('InvokeComplete', 'application/json', Buffer.from(JSON.stringify(complete)));
}

/** One event message. */
export function eventMessage(eventType: string, contentType: string, payload: Uint8Array): Buffer {
  const headers = Buffer.concat([
    header(':event-type', eventType),
    header(':content-type', contentType),
    header(':message-type', 'event'),
  ]);
  const total = PRELUDE + headers.byteLength + payload.byteLength + 4;
  const message = Buffer.allocUnsafe(total);
  message.writeUInt32BE(total, 0);
  message.writeUInt32BE(headers.byteLength, 4);
  message.writeUInt32BE(crc32(message.subarray(0, 8)), 8);
  headers.copy(message, PRELUDE);
  message.set(payload, PRELUDE + headers.byteLength);
  message.writeUInt32BE(crc32(message.subarray(0, total - 4)), total - 4);
  return message;
}

function header(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  const out = Buffer.allocUnsafe(1 + n.byteLength + 1 + 2 + v.byteLength);
  out.writeUInt8(n.byteLength, 0);
  n.copy(out, 1);
  out.writeUInt8(STRING_HEADER, 1 + n.byteLength);
  out.writeUInt16BE(v.byteLength, 2 + n.byteLength);
  v.copy(out, 4 + n.byteLength);
  return out;
}

/** CRC-32 (IEEE 802.3, zlib's): node:zlib has one only from Node 20.15, and micro-fn runs on any Node 20. */
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.byteLength; i++) crc = TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
