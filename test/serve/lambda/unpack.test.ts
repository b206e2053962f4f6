/** Unpacking uploaded packages as a stream, within Lambda's limits, against zip bombs. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zip } from '../../../adapters/lambda/zip.js';
import { MAX_FILES, MAX_UNZIPPED_BYTES, PackageTooLarge, unpackZip } from '../../../serve/lambda/unpack.js';
import { rejects } from '../../helpers.js';
import { zeroBomb } from './bombs.js';

let dir: string;
const MB = 1024 * 1024;

// ---
const unpack = suite('unpackZip');
unpack.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-unpack-'));
});
unpack.after.each(() => rmSync(dir, { recursive: true, force: true }));

unpack('writes the files of a package, modes included', async () => {
  const text = new TextEncoder().encode('export const handler = async () => 1;\n');
  const bytes = await unpackZip(
    zip([
      { name: 'index.mjs', data: text },
      { name: 'bin/run.sh', data: text, mode: 0o755 },
    ]),
    join(dir, 'out'),
  );
  assert.is(bytes, 2 * text.byteLength);
  assert.equal(readFileSync(join(dir, 'out', 'index.mjs')), Buffer.from(text));
  assert.is(statSync(join(dir, 'out', 'bin', 'run.sh')).mode & 0o111, 0o111 & ~process.umask());
});

unpack("refuses a 300 MB bomb (a few hundred KB of zip) in Lambda's words before inflating a byte", async () => {
  const bomb = await zeroBomb(300 * MB);
  assert.ok(bomb.byteLength < MB, `${bomb.byteLength} bytes of zip`);
  const started = Date.now();
  const err = await rejects(() => unpackZip(bomb, join(dir, 'out')));
  assert.instance(err, PackageTooLarge);
  assert.is((err as Error).message, `Unzipped size must be smaller than ${MAX_UNZIPPED_BYTES} bytes`);
  assert.ok(Date.now() - started < 200, `${Date.now() - started} ms`);
  assert.not.ok(existsSync(join(dir, 'out', 'index.mjs')));
});

unpack('cuts a lying bomb (it says 1 KB, inflates to 300 MB) at its stated size: under 1 MB written', async () => {
  const bomb = await zeroBomb(300 * MB, 1024);
  const err = await rejects(() => unpackZip(bomb, join(dir, 'out')));
  assert.match((err as Error).message, /index\.mjs is corrupt \(larger than its stated 1024 bytes\)/);
  assert.ok(statSync(join(dir, 'out', 'index.mjs')).size < MB);
});

unpack(`refuses a package of ${MAX_FILES + 1} empty files before writing any`, async () => {
  const entries = Array.from({ length: MAX_FILES + 1 }, (_, i) => ({ name: `f${i}`, data: new Uint8Array(0) }));
  const err = await rejects(() => unpackZip(zip(entries), join(dir, 'out')));
  assert.instance(err, PackageTooLarge);
  assert.match(
    (err as Error).message,
    new RegExp(`holds ${MAX_FILES + 1} files; the local Lambda API takes at most ${MAX_FILES}`),
  );
  assert.not.ok(existsSync(join(dir, 'out')));
});

unpack('inflates 200 MB as a stream: the event loop never waits 250 ms, memory grows less than 64 MB', async () => {
  const bomb = await zeroBomb(200 * MB);
  const rss = process.memoryUsage.rss();
  let peak = rss;
  let last = Date.now();
  let lag = 0;
  const tick = setInterval(() => {
    const now = Date.now();
    lag = Math.max(lag, now - last - 10);
    last = now;
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  try {
    assert.is(await unpackZip(bomb, join(dir, 'out')), 200 * MB);
  } finally {
    clearInterval(tick);
  }
  assert.is(statSync(join(dir, 'out', 'index.mjs')).size, 200 * MB);
  assert.ok(lag < 250, `the event loop waited ${lag} ms at most`);
  assert.ok(peak - rss < 64 * MB, `RSS grew ${((peak - rss) / MB).toFixed(1)} MB`);
});

unpack.run();
