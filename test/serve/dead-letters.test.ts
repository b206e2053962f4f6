/** Dead letters: long topics fit a file name; one that cannot be written is kept in memory and said, never lost. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeadLetters } from '../../serve/dead-letters.js';

let home: string;
let letters: DeadLetters;
let reports: string[];
let n = 0;
const message = (topic: string) => ({
  id: `m${++n}`,
  topic,
  headers: { 'micro-dead-letter-reason': 'failed 5 attempts' } as Record<string, string>,
  body: new TextEncoder().encode(`{"n":${n}}`),
});

// ---
const dlq = suite('DeadLetters');
dlq.before.each(() => {
  home = mkdtempSync(join(tmpdir(), 'micro-fn-dlq-'));
  reports = [];
  letters = new DeadLetters(home, (line) => reports.push(line));
});
dlq.after.each(() => rmSync(home, { recursive: true, force: true }));

dlq('keeps the dead letters of a 255-character topic: 2 added, 2 listed, from a file whose name fits', async () => {
  const topic = 't'.repeat(255);
  await letters.add(topic, message(topic));
  await letters.add(topic, message(topic));
  assert.equal(
    (await letters.list(topic)).map((l) => l.body),
    [`{"n":${n - 1}}`, `{"n":${n}}`],
  );
  const [file] = readdirSync(join(home, 'dlq'));
  assert.ok(file!.length <= 200, file);
  assert.equal(reports, []);
});

dlq('keeps 3 letters it cannot write in memory, says so once, lists them, and writes all 4 once it can', async () => {
  writeFileSync(join(home, 'dlq'), 'a file where the folder goes');
  for (let i = 0; i < 3; i++) await letters.add('orders', message('orders'));
  assert.is(reports.length, 1, reports.join('\n'));
  assert.match(reports[0]!, /cannot write dead letters of orders to .*orders\.jsonl: E\w+; 1 kept in memory/);
  assert.is((await letters.list('orders')).length, 3, 'held letters are listed');
  rmSync(join(home, 'dlq'));
  await letters.add('orders', message('orders'));
  assert.is((await letters.list('orders')).length, 4);
  assert.is(readdirSync(join(home, 'dlq')).length, 1);
  const drained = await letters.drain('orders');
  assert.is(drained.length, 4, 'each once');
  assert.equal(await letters.list('orders'), []);
});

dlq(
  "lists each failed attempt a dead letter's headers record, and replays without the dead-letter headers",
  async () => {
    const attempts = [
      { attempt: 1, code: 500, detail: 'boom', at: '2026-01-01T00:00:00.000Z' },
      { attempt: 2, code: 408, detail: 'did not answer within 10 ms', at: '2026-01-01T00:00:01.000Z' },
    ];
    const letter = message('orders');
    letter.headers = { ...letter.headers, 'micro-dead-letter-errors': JSON.stringify(attempts), 'x-trace': 't1' };
    await letters.add('orders', letter);
    assert.equal((await letters.list('orders'))[0]!.attempts, attempts);
    const published: Record<string, string>[] = [];
    assert.is(await letters.replay('orders', async (_, headers) => void published.push(headers)), 1);
    assert.equal(published, [{ 'x-trace': 't1' }]);
    assert.equal(await letters.list('orders'), []);
  },
);

dlq.run();
