import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32, zip } from '../../../adapters/lambda/zip.js';
import { listZip, unpack } from './helpers.js';

// ---
const zipSuite = suite('zip');
let dir: string;
zipSuite.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-zip-'));
});
zipSuite.after(() => rmSync(dir, { recursive: true, force: true }));

const text = new TextEncoder().encode('export const handler = async () => "hello";\n'.repeat(200));
const tiny = new TextEncoder().encode('x');

zipSuite('writes an archive another reader unpacks byte for byte, with valid CRCs and Unix modes', () => {
  const file = join(dir, 'a.zip');
  writeFileSync(file, zip([{ name: 'index.mjs', data: text }, { name: 'bin/run.sh', data: tiny, mode: 0o755 }]));
  assert.equal(listZip(file), [
    { name: 'index.mjs', mode: 0o644, size: text.byteLength },
    { name: 'bin/run.sh', mode: 0o755, size: 1 },
  ]);
  const out = join(dir, 'a');
  unpack(file, out);
  assert.equal(readFileSync(join(out, 'index.mjs')), Buffer.from(text));
  assert.equal(readFileSync(join(out, 'bin', 'run.sh')), Buffer.from(tiny));
});

zipSuite('compresses what deflate makes smaller', () => {
  assert.ok(zip([{ name: 'index.mjs', data: text }]).byteLength < text.byteLength / 10);
});

zipSuite('gives equal inputs equal bytes: every entry is dated 1980-01-01 00:00, not now', () => {
  const a = Buffer.from(zip([{ name: 'index.mjs', data: text }]));
  assert.equal(Buffer.from(zip([{ name: 'index.mjs', data: text }])), a);
  // The local header's DOS time and date (offsets 10 and 12).
  assert.is(a.readUInt16LE(10), 0);
  assert.is(a.readUInt16LE(12), (1 << 5) | 1);
});

zipSuite.run();

// ---
const crc = suite('crc32');

crc('matches the CRC-32 check value', () => {
  assert.is(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.is(crc32(new Uint8Array()), 0);
});

crc.run();
