/**
 * UTF-8 encoding of many short texts (a stream's messages) without an ArrayBuffer each. Runs on every target.
 */
const encoder = new TextEncoder();

/** Bytes of the slab short messages are encoded into: 64 KiB. */
const SLAB = 64 * 1024;
/** The longest message encoded by hand, in characters; a longer one costs TextEncoder little per character. */
const BY_HAND = 256;

/**
 * Encodes a stream message's text as UTF-8. A short ASCII message (most JSON values are) is copied by hand into a slab shared
 * with the messages before it: TextEncoder.encode costs about 1 µs a small message, most of it for the ArrayBuffer of
 * its own it allocates; a view of a slab costs a tenth of that. Others go through TextEncoder.
 */
export class SlabEncoder {
  #slab = new ArrayBuffer(SLAB);
  #bytes = new Uint8Array(this.#slab);
  #used = 0;

  encode(text: string): Uint8Array {
    const length = text.length;
    if (length > BY_HAND) return encoder.encode(text);
    if (this.#used + length > SLAB) {
      this.#slab = new ArrayBuffer(SLAB);
      this.#bytes = new Uint8Array(this.#slab);
      this.#used = 0;
    }
    const bytes = this.#bytes;
    const start = this.#used;
    for (let i = 0; i < length; i++) {
      const c = text.charCodeAt(i);
      if (c > 0x7f) return encoder.encode(text); // what was copied stays unused
      bytes[start + i] = c;
    }
    this.#used += length;
    return new Uint8Array(this.#slab, start, length);
  }
}
