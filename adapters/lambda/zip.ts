/**
 * Build-time and `micro-fn serve` only: a minimal zip writer and reader (stored or deflated entries, no zip64)
 * for Lambda deployment packages. Entries carry Unix modes, which Lambda keeps: a file without read
 * permission for others fails at load time.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  /** Path inside the archive, `/`-separated. */
  name: string;
  data: Uint8Array;
  /** Unix permission bits; default 0o644. */
  mode?: number;
}

/**
 * The archive's bytes. Every entry has the same timestamp (1980-01-01, the earliest a zip can hold), so equal
 * inputs give an equal zip and an equal CodeSha256: redeploying unchanged code changes nothing.
 * @example
 * writeFileSync('function.zip', zip([{ name: 'index.mjs', data: readFileSync('dist/index.mjs') }]));
 */
export function zip(entries: readonly ZipEntry[]): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const deflated = deflateRawSync(entry.data, { level: 9 });
    // Stored when deflate would not make it smaller (tiny or already compressed files).
    const stored = deflated.byteLength >= entry.data.byteLength;
    const body = stored ? entry.data : deflated;
    const crc = crc32(entry.data);
    // Shared by the local header (offset 4) and the central one (offset 6): version needed, flags (bit 11:
    // UTF-8 names), method, time, date, CRC-32, sizes, name length, extra length.
    const common = Buffer.alloc(26);
    common.writeUInt16LE(20, 0);
    common.writeUInt16LE(0x0800, 2);
    common.writeUInt16LE(stored ? 0 : 8, 4);
    common.writeUInt16LE(0, 6); // 00:00:00
    common.writeUInt16LE((0 << 9) | (1 << 5) | 1, 8); // 1980-01-01
    common.writeUInt32LE(crc, 10);
    common.writeUInt32LE(body.byteLength, 14);
    common.writeUInt32LE(entry.data.byteLength, 18);
    common.writeUInt16LE(name.byteLength, 22);
    common.writeUInt16LE(0, 24);

    const local = Buffer.alloc(4);
    local.writeUInt32LE(0x04034b50, 0);
    locals.push(local, common, name, Buffer.from(body.buffer, body.byteOffset, body.byteLength));

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix (3), so the external attributes are Unix modes
    common.copy(central, 6);
    // comment length, disk number, internal attributes: 0
    central.writeUInt32LE(((0o100000 | (entry.mode ?? 0o644)) << 16) >>> 0, 38); // regular file + mode
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);

    offset += 30 + name.byteLength + body.byteLength;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.byteLength, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** One file of an archive as its central directory describes it, not yet inflated. */
export interface ZipItem {
  /** Path inside the archive, `/`-separated; never absolute, never with `..`. */
  name: string;
  /** 0 stored, 8 deflated. */
  method: 0 | 8;
  /** CRC-32 of the unpacked bytes, as the archive states it. */
  crc: number;
  /** Unpacked size, as the archive states it (a reader must not trust it beyond this). */
  size: number;
  /** The packed bytes (a view into the archive). */
  packed: Uint8Array;
  /** Unix permission bits (0o644 when the archive was not made on Unix). */
  mode: number;
}

/**
 * The files of an archive (folders are implied by the names), read from its central directory without inflating
 * anything: what a reader that inflates as a stream needs. Throws on what is not a zip, an encrypted or zip64
 * entry, an unsupported method, or a name that would leave the folder it is extracted to (`../x`, `/etc/x`).
 * `maxEntries` refuses an archive with more entries before any is read.
 */
export function zipItems(archive: Uint8Array, maxEntries = Infinity): ZipItem[] {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  // The end-of-central-directory record: 22 bytes, then a comment of up to 65535.
  let end = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error('not a zip archive (no end of central directory)');
  const count = buf.readUInt16LE(end + 10);
  if (count > maxEntries) throw new TooManyEntries(count, maxEntries);
  let at = buf.readUInt32LE(end + 16);
  const items: ZipItem[] = [];
  for (let n = 0; n < count; n++) {
    if (at + 46 > buf.length || buf.readUInt32LE(at) !== 0x02014b50)
      throw new Error('corrupt zip archive (bad central directory)');
    const flags = buf.readUInt16LE(at + 8);
    const method = buf.readUInt16LE(at + 10);
    const crc = buf.readUInt32LE(at + 16);
    const packed = buf.readUInt32LE(at + 20);
    const size = buf.readUInt32LE(at + 24);
    const nameLength = buf.readUInt16LE(at + 28);
    const skip = nameLength + buf.readUInt16LE(at + 30) + buf.readUInt16LE(at + 32);
    const unix = buf.readUInt8(at + 5) === 3;
    const attributes = buf.readUInt32LE(at + 38);
    const local = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLength);
    at += 46 + skip;
    if (name.endsWith('/')) continue;
    if (name.startsWith('/') || name.split(/[\\/]/).includes('..'))
      throw new Error(`unsafe name in the zip archive: ${name}`);
    if (flags & 1) throw new Error(`${name} is encrypted`);
    if (packed === 0xffffffff || size === 0xffffffff) throw new Error(`${name} needs zip64, which is not supported`);
    if (local + 30 > buf.length || buf.readUInt32LE(local) !== 0x04034b50)
      throw new Error(`corrupt zip archive (bad local header of ${name})`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    if (method !== 0 && method !== 8)
      throw new Error(`${name} uses compression method ${method}; only stored and deflated entries are supported`);
    if (start + packed > buf.length) throw new Error(`corrupt zip archive (${name} runs past its end)`);
    items.push({
      name,
      method,
      crc,
      size,
      packed: buf.subarray(start, start + packed),
      mode: (unix && (attributes >>> 16) & 0o7777) || 0o644,
    });
  }
  return items;
}

/** An archive with more entries than a reader takes. */
export class TooManyEntries extends Error {
  override readonly name = 'TooManyEntries' as const;
  readonly count: number;

  constructor(count: number, max: number) {
    super(`the archive holds ${count} entries; the most is ${max}`);
    this.count = count;
  }
}

/**
 * The files of an archive, inflated in memory, with their Unix modes when the archive was made on Unix. Throws
 * as zipItems does, and on a bad CRC. For archives that are trusted or small: serve inflates uploads as a stream,
 * with limits (serve/lambda/unpack.ts).
 */
export function unzip(archive: Uint8Array): ZipEntry[] {
  return zipItems(archive).map(({ name, method, crc, size, packed, mode }) => {
    const data = method === 8 ? inflateRawSync(packed) : packed;
    if (data.byteLength !== size || crc32(data) !== crc) throw new Error(`${name} is corrupt (size or CRC mismatch)`);
    return { name, data, mode };
  });
}

let table: Uint32Array | undefined;

/** CRC-32 (IEEE), as zip requires. */
export function crc32(data: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
