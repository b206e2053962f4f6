/**
 * A small JSON body handed to Node's HTTP machinery as text. Both ends are slower with bytes: fetch copies a
 * Uint8Array body before it sends it (some 7 µs a call), and node:http writes the head and a byte body as two
 * chunks where it joins the head and a text body into one write. A JSON body is UTF-8 text, so the same text goes;
 * bytes that are not UTF-8 after all, another type, or a large body go as they are. No `node:` import.
 */

/** Bodies up to this size go as text: decoding is cheap for them, and a large body gains nothing from it. */
const TEXT_BODY = 64 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `body` as the same UTF-8 text when it is a small `application/json` body, else `body` itself. */
export function asText<B extends Uint8Array>(contentType: string, body: B): string | B {
  if (contentType !== 'application/json' || body.byteLength > TEXT_BODY) return body;
  try {
    return utf8.decode(body);
  } catch {
    return body;
  }
}
