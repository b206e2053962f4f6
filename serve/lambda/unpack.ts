/**
 * Unpacks an uploaded deployment package into a folder with Lambda's limits, as a stream: each file is inflated
 * chunk by chunk (zlib in Node's thread pool, so the event loop keeps serving) and written as it comes, so memory
 * holds the archive and one chunk, never a whole file. A package stating more than 250 MB unpacked, or more than
 * MAX_FILES files, is refused before anything is inflated, in Lambda's words; a file that inflates past the size
 * the archive states for it is cut there (a lying archive cannot pass the limit). The caller removes what was written.
 */
import { open, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInflateRaw, crc32 } from 'node:zlib';
import { TooManyEntries, zipItems } from '../../adapters/lambda/zip.js';

/** Lambda's quota for a function's unpacked code: 250 MB, which Lambda counts as 262,144,000 bytes. */
export const MAX_UNZIPPED_BYTES = 262_144_000;
/** Files in one package at most (Lambda has no count of its own; this one bounds a zip of empty files). */
export const MAX_FILES = 20_000;
const CHUNK = 64 * 1024;

export interface UnpackLimits {
  maxBytes?: number;
  maxFiles?: number;
}

/** A package refused for its size or number of files: Lambda's InvalidParameterValueException. */
export class PackageTooLarge extends Error {
  override readonly name = 'PackageTooLarge' as const;
}

/**
 * Writes the files of `archive` under `dir` (made if missing) and resolves with their bytes. Rejects with
 * PackageTooLarge past the limits (before anything is inflated), or an Error for an archive that is not a valid zip
 * or a file larger than the archive says (stopped at its stated size); `dir` may then hold part of it.
 */
export async function unpackZip(archive: Uint8Array, dir: string, limits: UnpackLimits = {}): Promise<number> {
  const maxBytes = limits.maxBytes ?? MAX_UNZIPPED_BYTES;
  const maxFiles = limits.maxFiles ?? MAX_FILES;
  let items;
  try {
    items = zipItems(archive, maxFiles);
  } catch (err) {
    if (err instanceof TooManyEntries) throw tooManyFiles(err.count, maxFiles);
    throw err;
  }
  if (items.length > maxFiles) throw tooManyFiles(items.length, maxFiles);
  // What the archive says first (cheap), what inflating gives after (an archive can lie about sizes).
  const stated = items.reduce((sum, item) => sum + item.size, 0);
  if (stated >= maxBytes) throw tooLarge(maxBytes);
  await mkdir(dir, { recursive: true });
  // Every file is held to its stated size below, so the whole stays under the stated total checked above.
  for (const item of items) {
    const file = join(dir, item.name);
    await mkdir(dirname(file), { recursive: true });
    const out = await open(file, 'w', item.mode);
    try {
      let size = 0;
      let crc = 0;
      for await (const chunk of inflated(item.packed, item.method)) {
        size += chunk.byteLength;
        if (size > item.size) throw new Error(`${item.name} is corrupt (larger than its stated ${item.size} bytes)`);
        crc = crc32(chunk, crc);
        await out.write(chunk);
      }
      if (size !== item.size || crc !== item.crc) throw new Error(`${item.name} is corrupt (size or CRC mismatch)`);
    } finally {
      await out.close();
    }
  }
  return stated;
}

/** The bytes of one entry, chunk by chunk: a stored one as it is, a deflated one through zlib. */
async function* inflated(packed: Uint8Array, method: 0 | 8): AsyncGenerator<Uint8Array> {
  if (method === 0) {
    for (let at = 0; at < packed.byteLength; at += CHUNK) yield packed.subarray(at, at + CHUNK);
    return;
  }
  const inflate = createInflateRaw({ chunkSize: CHUNK });
  inflate.end(packed);
  try {
    for await (const chunk of inflate) yield chunk as Buffer;
  } finally {
    // Stopped early (a limit): the rest is not inflated.
    inflate.destroy();
  }
}

function tooLarge(max: number): PackageTooLarge {
  return new PackageTooLarge(`Unzipped size must be smaller than ${max} bytes`);
}

function tooManyFiles(count: number, max: number): PackageTooLarge {
  return new PackageTooLarge(`The deployment package holds ${count} files; the local Lambda API takes at most ${max}`);
}
