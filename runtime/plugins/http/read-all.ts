/** Reading a whole Web stream body: the fetch handler's request bodies and the fetch client's replies. No `node:` import. */

const EMPTY = new Uint8Array(0);

/**
 * Every byte `reader` gives, as one array (the chunk itself when there is only one); undefined the moment it passes
 * `max` bytes (a chunked body has no Content-Length to check up front), and the rest is cancelled.
 */
export async function readAll(
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
  max = Infinity,
): Promise<Uint8Array | undefined> {
  if (!reader) return EMPTY;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    size += r.value.byteLength;
    if (size > max) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(r.value);
  }
  if (chunks.length <= 1) return chunks[0] ?? EMPTY;
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return body;
}
