/** Reading a whole Web stream body: the fetch handler's request bodies and the fetch client's replies. No `node:` import. */

const EMPTY = new Uint8Array(0);

/**
 * What a host reads of a request body it will not use and throws away at most, before it answers: the fetch hosts and
 * the node:http listener (exchange.ts) alike. A host that answers while the body is still arriving closes the connection
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
      await dropRest(reader, linger);
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

/** Reads what is left of `reader` and drops it, `linger` bytes at most; then cancels whatever is still to come. */
export async function dropRest(reader: ReadableStreamDefaultReader<Uint8Array>, linger = LINGER_BYTES): Promise<void> {
  for (let left = linger; left > 0;) {
    const { done, value } = await reader.read();
    if (done) return;
    left -= value.byteLength;
  }
  await reader.cancel();
}
