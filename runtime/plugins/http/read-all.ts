/** Reading a whole Web stream body: the fetch handler's request bodies and the fetch client's replies. No `node:` import. */

const EMPTY = new Uint8Array(0);

/**
 * What a fetch host reads of a request body it will not use and throws away at most, before it answers: the node:http
 * listener's LINGER_BYTES (exchange.ts). A host that answers while the body is still arriving closes the connection
 * under a caller that is still sending (workerd does), which most clients report as a failed request, not the answer.
 */
export const LINGER_BYTES = 8_388_608; // 8 MiB

/**
 * Every byte `reader` gives, as one array (the chunk itself when there is only one); undefined once it passes `max`
 * bytes (a chunked body has no Content-Length to check up front): the rest is read and dropped up to `linger` bytes
 * more (a request body: LINGER_BYTES), then cancelled.
 */
export async function readAll(
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
  max = Infinity,
  linger = 0,
): Promise<Uint8Array | undefined> {
  if (!reader) return EMPTY;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    size += r.value.byteLength;
    if (size > max) {
      for (let left = linger; left > 0; left -= r.value.byteLength)
        if ((r = await reader.read()).done) return undefined;
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
