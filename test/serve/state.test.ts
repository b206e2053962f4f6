// serve's records on disk (serve/state.ts): written whole and private, read back past torn and foreign files.
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RecordStore, stateFolder } from '../../serve/state.js';

interface Record {
  n: number;
}

let scratch: string;
let said: string[];
const parse = (value: unknown): Record => {
  if (typeof (value as Record | null)?.n !== 'number') throw new Error('n is not a number');
  return value as Record;
};
const storeIn = (dir: string) => new RecordStore<Record>(dir, { parse, say: (line) => said.push(line) });

// ---
const store = suite('RecordStore');
store.before.each(() => {
  scratch = mkdtempSync(join(tmpdir(), 'micro-fn-state-'));
  said = [];
});
store.after.each(() => rmSync(scratch, { recursive: true, force: true }));

store('writes each record as a 0600 file in a 0700 folder, and reads every one back', async () => {
  const dir = join(scratch, 'state', 'a', 'functions');
  const records = storeIn(dir);
  await Promise.all([
    records.write('one', { n: 1 }),
    records.write('two', { n: 2 }),
    records.write('x/../y', { n: 3 }),
  ]);
  assert.equal(
    (await storeIn(dir).readAll()).map((r) => [r.key, r.value.n]),
    [
      ['one', 1],
      ['two', 2],
      ['x/../y', 3],
    ],
  );
  for (const folder of [join(scratch, 'state'), join(scratch, 'state', 'a'), dir])
    assert.is(statSync(folder).mode & 0o777, 0o700, folder);
  const files = readdirSync(dir);
  assert.is(files.length, 3, files.join(','));
  for (const file of files) assert.is(statSync(join(dir, file)).mode & 0o777, 0o600, file);
});

store('of writes to one key in quick succession, the last one asked for is the one kept', async () => {
  const records = storeIn(scratch);
  await Promise.all(Array.from({ length: 20 }, (_, n) => records.write('same', { n })));
  assert.equal(
    (await records.readAll()).map((r) => r.value.n),
    [19],
  );
  await Promise.all([records.write('same', { n: 20 }), records.remove('same')]);
  assert.equal(await records.readAll(), [], 'a removal after a write leaves nothing');
});

store('skips a torn record, a foreign file and a record that fails its checks, saying which (3 of 4)', async () => {
  const records = storeIn(scratch);
  await records.write('good', { n: 1 });
  writeFileSync(join(scratch, 'torn.json'), '{"key":"torn","value":{"n":');
  writeFileSync(join(scratch, 'other.json'), '{"key":"someone-else","value":{"n":2}}');
  writeFileSync(join(scratch, 'bad.json'), '{"key":"bad","value":{"n":"two"}}');
  writeFileSync(join(scratch, 'good.json.1a2b.tmp'), 'half of a write a crash interrupted');
  assert.equal(
    (await records.readAll()).map((r) => r.key),
    ['good'],
  );
  assert.is(said.length, 3, said.join('\n'));
  assert.match(said.join('\n'), `skipped the record ${join(scratch, 'bad.json')}: n is not a number`);
  assert.match(said.join('\n'), `skipped the record ${join(scratch, 'other.json')}: it names "someone-else"`);
  assert.match(said.join('\n'), `skipped the record ${join(scratch, 'torn.json')}: `);
  assert.not.ok(
    readdirSync(scratch).some((f) => f.endsWith('.tmp')),
    'the temporary file is removed',
  );
});

store('reads nothing from a folder that is not there, and makes it again for a write after rm -r', async () => {
  const dir = join(scratch, 'gone');
  const records = storeIn(dir);
  assert.equal(await records.readAll(), []);
  await records.write('a', { n: 1 });
  rmSync(dir, { recursive: true });
  await records.remove('a');
  await records.write('b', { n: 2 });
  assert.equal(
    (await records.readAll()).map((r) => r.key),
    ['b'],
  );
  assert.is(said.length, 0, said.join('\n'));
});

store.run();

// ---
const folder = suite('stateFolder');

folder('is one folder per address under MICRO_FN_HOME/state, and none for port 0 (no serve is that one again)', () => {
  assert.is(stateFolder('/h', '127.0.0.1:52980'), join('/h', 'state', '127.0.0.1%3A52980'));
  assert.is(stateFolder('/h', '[::1]:80'), join('/h', 'state', '%3A%3A1%3A80'));
  assert.is(stateFolder('/h', '127.0.0.1:0'), undefined);
});

folder.run();
