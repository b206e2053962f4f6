/**
 * RFC 6455 framing, the server's half: the handshake's accept key, a reader that turns a client's bytes into whole
 * messages and control frames (reassembling fragments, unmasking, checking every rule a server must), and the
 * writer of the server's own (unmasked) frames. No sockets here: websocket.ts drives it.
 */
/** The GUID RFC 6455 §1.3 appends to the client's key. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** Close codes (RFC 6455 §7.4.1) the server sends. */
export const CLOSE = {
  normal: 1000,
  protocolError: 1002,
  unsupportedData: 1003,
  noStatus: 1005,
  invalidPayload: 1007,
  tooBig: 1009,
  internalError: 1011,
} as const;

/**
 * `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`. Web Crypto, not node:crypto: a bundle's static import of
 * node:crypto would load it at every function's start, WebSocket or not.
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-1', new TextEncoder().encode(key + GUID));
  return Buffer.from(digest).toString('base64');
}

/** True for a `Sec-WebSocket-Key` that is 16 bytes in base64, as RFC 6455 §4.1 requires. */
export function validKey(key: string | undefined): key is string {
  return typeof key === 'string' && /^[A-Za-z0-9+/]{22}==$/.test(key);
}

/** What the reader found: a whole message, or a control frame. */
export type WsEvent =
  | { kind: 'text' | 'binary'; data: Buffer }
  | { kind: 'ping' | 'pong'; data: Buffer }
  | { kind: 'close'; code: number; reason: string };

/** A client's frame that breaks the protocol: the connection fails with `code`. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

interface Frame {
  fin: boolean;
  opcode: number;
  mask: Buffer | undefined;
  length: number;
  received: number;
  parts: Buffer[];
}

const EMPTY = Buffer.alloc(0);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a client's frames. `push` takes the bytes as they arrive and returns what they completed; it throws a
 * FrameError on the first frame that breaks RFC 6455 or is longer than `maxMessage` (a fragmented message counts
 * whole). Holds at most one frame header's bytes and one message's payload (`maxMessage`).
 */
export class FrameReader {
  readonly #max: number;
  /** Bytes of a frame header not complete yet (at most 14). */
  #rest: Buffer = EMPTY;
  #frame: Frame | undefined;
  /** The fragments of a message whose last frame has not come: its opcode and payloads. */
  #message: { opcode: number; parts: Buffer[]; size: number } | undefined;

  constructor(maxMessage: number) {
    this.#max = maxMessage;
  }

  push(chunk: Buffer): WsEvent[] {
    const out: WsEvent[] = [];
    let data = this.#rest.length > 0 ? Buffer.concat([this.#rest, chunk]) : chunk;
    this.#rest = EMPTY;
    let at = 0;
    while (at < data.length) {
      if (!this.#frame) {
        const header = this.#header(data, at);
        if (!header) {
          this.#rest = Buffer.from(data.subarray(at));
          break;
        }
        at += header.size;
        this.#frame = header.frame;
      }
      const frame = this.#frame;
      const take = Math.min(frame.length - frame.received, data.length - at);
      if (take > 0) {
        frame.parts.push(data.subarray(at, at + take));
        frame.received += take;
        at += take;
      }
      if (frame.received < frame.length) break;
      this.#frame = undefined;
      const payload = frame.parts.length === 1 ? Buffer.from(frame.parts[0]!) : Buffer.concat(frame.parts);
      if (frame.mask) unmask(payload, frame.mask);
      const event = this.#complete(frame, payload);
      if (event) out.push(event);
    }
    data = EMPTY;
    return out;
  }

  /** The header at `at`, checked; undefined while its bytes have not all come. */
  #header(data: Buffer, at: number): { frame: Frame; size: number } | undefined {
    if (data.length - at < 2) return undefined;
    const b0 = data[at]!;
    const b1 = data[at + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    let size = 2;
    if (length === 126) size += 2;
    else if (length === 127) size += 8;
    if (masked) size += 4;
    if (data.length - at < size) return undefined;
    // RSV1-3 must be 0: no extension is ever negotiated (RFC 6455 §5.2).
    if ((b0 & 0x70) !== 0) throw new FrameError(CLOSE.protocolError, 'a frame has reserved bits set');
    if (!masked) throw new FrameError(CLOSE.protocolError, 'a client frame is not masked (RFC 6455 §5.1)');
    const control = opcode >= 0x8;
    if (control ? opcode > OPCODE.pong : opcode > OPCODE.binary)
      throw new FrameError(CLOSE.protocolError, `unknown opcode ${opcode}`);
    if (length === 126) length = data.readUInt16BE(at + 2);
    else if (length === 127) {
      const high = data.readUInt32BE(at + 2);
      length = high > 0 ? Number.MAX_SAFE_INTEGER : data.readUInt32BE(at + 6);
    }
    if (control) {
      if (!fin || length > 125)
        throw new FrameError(CLOSE.protocolError, 'a control frame is fragmented or longer than 125 bytes');
    } else {
      if (opcode === OPCODE.continuation && !this.#message)
        throw new FrameError(CLOSE.protocolError, 'a continuation frame with no message to continue');
      if (opcode !== OPCODE.continuation && this.#message)
        throw new FrameError(CLOSE.protocolError, 'a new message began before the last one was complete');
      if ((this.#message?.size ?? 0) + length > this.#max)
        throw new FrameError(CLOSE.tooBig, `a message is longer than ${this.#max} bytes`);
    }
    const mask = Buffer.from(data.subarray(at + size - 4, at + size));
    return { frame: { fin, opcode, mask, length, received: 0, parts: [] }, size };
  }

  #complete(frame: Frame, payload: Buffer): WsEvent | undefined {
    switch (frame.opcode) {
      case OPCODE.ping:
        return { kind: 'ping', data: payload };
      case OPCODE.pong:
        return { kind: 'pong', data: payload };
      case OPCODE.close:
        return closeEvent(payload);
    }
    const message = (this.#message ??= { opcode: frame.opcode, parts: [], size: 0 });
    message.parts.push(payload);
    message.size += payload.length;
    if (!frame.fin) return undefined;
    this.#message = undefined;
    const data = message.parts.length === 1 ? message.parts[0]! : Buffer.concat(message.parts, message.size);
    return { kind: message.opcode === OPCODE.text ? 'text' : 'binary', data };
  }
}

function closeEvent(payload: Buffer): WsEvent {
  if (payload.length === 0) return { kind: 'close', code: CLOSE.noStatus, reason: '' };
  if (payload.length === 1) throw new FrameError(CLOSE.protocolError, 'a close frame with a 1-byte payload');
  let reason: string;
  try {
    reason = utf8.decode(payload.subarray(2));
  } catch {
    throw new FrameError(CLOSE.invalidPayload, 'a close reason that is not UTF-8');
  }
  return { kind: 'close', code: payload.readUInt16BE(0), reason };
}

function unmask(payload: Buffer, mask: Buffer): void {
  for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
}

/** A server frame (never masked, never fragmented): the header and the payload as one Buffer. */
export function frame(opcode: number, payload: Uint8Array): Buffer {
  const length = payload.byteLength;
  const size = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(size + length);
  out[0] = 0x80 | opcode;
  if (size === 2) out[1] = length;
  else if (size === 4) {
    out[1] = 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    out.writeUInt32BE(length >>> 0, 6);
  }
  out.set(payload, size);
  return out;
}

/** A close frame with `code` and a reason cut to fit a control frame's 125 bytes. */
export function closeFrame(code: number, reason = ''): Buffer {
  // A close frame's payload is 125 bytes at most: the reason is cut to 123, on a character's boundary.
  let text = Buffer.from((reason = reason.slice(0, 123)));
  while (text.length > 123) text = Buffer.from((reason = reason.slice(0, -1)));
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return frame(OPCODE.close, payload);
}

/** True when `data` is UTF-8 that parses as one JSON value. */
export function isJson(data: Buffer): boolean {
  try {
    JSON.parse(utf8.decode(data));
    return true;
  } catch {
    return false;
  }
}
