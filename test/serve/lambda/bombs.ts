/** Zip bombs for the tests of the Lambda API's unpacking: small archives of zeros that inflate to hundreds of MB. */
import { createDeflateRaw, crc32 } from 'node:zlib';

/**
 * A zip of one file, `name`, of `size` zero bytes (deflated as a stream, so making it holds no more than a chunk).
 * `stated` is the size its headers claim (default: the truth): a smaller one makes a lying archive.
 */
export async function zeroBomb(size: number, stated = size, name = 'index.mjs'): Promise<Buffer> {
  const deflate = createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve) => deflate.on('end', resolve));
  const zeros = Buffer.alloc(1024 * 1024);
  let crc = 0;
  for (let left = size; left > 0; left -= zeros.length) {
    const part = left >= zeros.length ? zeros : zeros.subarray(0, left);
    crc = crc32(part, crc);
    if (!deflate.write(part)) await new Promise((r) => deflate.once('drain', r));
  }
  deflate.end();
  await done;
  const body = Buffer.concat(chunks);
  const file = Buffer.from(name);
  const common = Buffer.alloc(26);
  common.writeUInt16LE(20, 0);
  common.writeUInt16LE(8, 4); // deflated
  common.writeUInt32LE(crc, 10);
  common.writeUInt32LE(body.length, 14);
  common.writeUInt32LE(stated, 18);
  common.writeUInt16LE(file.length, 22);
  const local = Buffer.concat([u32(0x04034b50), common, file, body]);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE((3 << 8) | 20, 4);
  common.copy(central, 6);
  central.writeUInt32LE(((0o100000 | 0o644) << 16) >>> 0, 38);
  const directory = Buffer.concat([central, file]);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(local.length, 16);
  return Buffer.concat([local, directory, end]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}
