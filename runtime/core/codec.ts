import { errors } from './errors.js';

/** Turns values into bytes and back. JSON is the default; a codec is picked by content type. */
export interface Codec {
  readonly contentType: string;
  encode(value: unknown): Uint8Array;
  /** Throws a 400 MicroError when the bytes are not valid for this codec. */
  decode(bytes: Uint8Array): unknown;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The JSON codec. An empty body decodes to `{}`, as go-micro's did. */
export const jsonCodec: Codec = {
  contentType: 'application/json',
  encode(value) {
    return encoder.encode(JSON.stringify(value === undefined ? null : value));
  },
  decode(bytes) {
    if (bytes.byteLength === 0) return {};
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch (err) {
      throw errors.badRequest('micro-fn', `malformed JSON: ${(err as Error).message}`, { cause: err });
    }
  },
};
