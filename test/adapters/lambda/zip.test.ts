import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32, unzip, zip } from '../../../adapters/lambda/zip.js';
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
  writeFileSync(
    file,
    zip([
      { name: 'index.mjs', data: text },
      { name: 'bin/run.sh', data: tiny, mode: 0o755 },
    ]),
  );
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
const unzipSuite = suite('unzip');
let scratch: string;
unzipSuite.before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-unzip-'));
});
unzipSuite.after(() => rmSync(scratch, { recursive: true, force: true }));

unzipSuite('reads back what zip() writes, modes included', () => {
  const entries = unzip(
    zip([
      { name: 'index.mjs', data: text },
      { name: 'bin/run.sh', data: tiny, mode: 0o755 },
    ]),
  );
  assert.equal(
    entries.map((e) => [e.name, e.mode, Buffer.from(e.data).equals(Buffer.from(e.name === 'index.mjs' ? text : tiny))]),
    [
      ['index.mjs', 0o644, true],
      ['bin/run.sh', 0o755, true],
    ],
  );
});

unzipSuite(
  "reads another writer's archive (Python's zipfile): stored and deflated entries, folders skipped, modes",
  () => {
    const file = join(scratch, 'py.zip');
    const script = [
      'import sys, zipfile',
      'z = zipfile.ZipFile(sys.argv[1], "w")',
      'z.writestr("lib/", "")',
      'i = zipfile.ZipInfo("lib/a.js"); i.external_attr = 0o100640 << 16; i.compress_type = zipfile.ZIP_DEFLATED',
      'z.writestr(i, "export const a = 1;\\n" * 50)',
      'j = zipfile.ZipInfo("b.txt"); j.create_system = 0', // made on MS-DOS: no Unix mode, so 0o644
      'z.writestr(j, "stored")',
      'z.close()',
    ].join('\n');
    const made = spawnSync('python3', ['-c', script, file], { encoding: 'utf8' });
    assert.is(made.status, 0, made.stderr);
    const entries = unzip(readFileSync(file));
    assert.equal(
      entries.map((e) => [e.name, e.mode, Buffer.from(e.data).toString()]),
      [
        ['lib/a.js', 0o640, 'export const a = 1;\n'.repeat(50)],
        ['b.txt', 0o644, 'stored'],
      ],
    );
  },
);

unzipSuite('refuses what is not a zip, a corrupt entry, and a name that would leave the folder', () => {
  assert.throws(() => unzip(new TextEncoder().encode('not a zip at all, clearly')), /not a zip archive/);
  const archive = Buffer.from(zip([{ name: 'index.mjs', data: tiny }]));
  const at = 30 + 'index.mjs'.length; // the stored byte
  archive[at] = archive[at]! ^ 0xff;
  assert.throws(() => unzip(archive), /index\.mjs is corrupt/);
  assert.throws(
    () => unzip(zip([{ name: '../escape.js', data: tiny }])),
    /unsafe name in the zip archive: \.\.\/escape\.js/,
  );
  assert.throws(() => unzip(zip([{ name: '/etc/passwd', data: tiny }])), /unsafe name/);
});

unzipSuite.run();

// ---
const crc = suite('crc32');

crc('matches the CRC-32 check value', () => {
  assert.is(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  assert.is(crc32(new Uint8Array()), 0);
});

crc.run();
