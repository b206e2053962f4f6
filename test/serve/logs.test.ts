/** Function logs: no file-system error reaches serve, a removed folder is made again, each failure said once. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogSink } from '../../serve/logs.js';
import { eventually, sleep } from '../helpers.js';

let home: string;
let sink: LogSink;
let reports: string[];

const lines = (name: string) =>
  // Whole lines only: the file exists, empty, from its open until the first write lands.
  existsSync(LogSink.file(home, name)) ? readFileSync(LogSink.file(home, name), 'utf8').split('\n').slice(0, -1) : [];

// ---
const logs = suite('LogSink');
logs.before.each(() => {
  home = mkdtempSync(join(tmpdir(), 'micro-fn-logs-'));
  reports = [];
  sink = new LogSink(home, false, (line) => reports.push(line));
});
logs.after.each(async () => {
  await sink.close();
  rmSync(home, { recursive: true, force: true });
});

logs('keeps the log of a 300-character function name in a file whose name fits', async () => {
  const name = 'n'.repeat(300);
  sink.write(name, 'inv1', 'stdout', 'hello');
  await eventually(() => lines(name).length === 1, 3000, 'the log line');
  assert.match(lines(name)[0]!, new RegExp(`${name} inv1 stdout: hello$`));
  assert.equal(reports, []);
});

logs('makes logs/ again when it is removed while a function writes: 20 of 20 later lines kept', async () => {
  sink.write('fn', 'a', 'stdout', 'before');
  await eventually(() => lines('fn').length === 1, 3000, 'the first line');
  rmSync(join(home, 'logs'), { recursive: true, force: true });
  await sleep(1100); // the open file is checked for being there at most once a second
  for (let i = 0; i < 20; i++) sink.write('fn', 'b', 'stdout', `after ${i}`);
  await eventually(() => lines('fn').length === 20, 3000, '20 lines in the new file');
  assert.match(lines('fn')[19]!, /after 19$/);
  assert.equal(reports, []);
});

logs('reports a file it cannot open once for 100 lines, and keeps taking lines', async () => {
  mkdirSync(LogSink.file(home, 'blocked'), { recursive: true }); // a folder where the file would be: EISDIR
  for (let i = 0; i < 100; i++) sink.write('blocked', 'c', 'stderr', `line ${i}`);
  await eventually(() => reports.length > 0, 3000, 'the report');
  await sleep(100);
  assert.is(reports.length, 1, reports.join('\n'));
  assert.match(reports[0]!, /cannot write the log of blocked to .*blocked\.log: EISDIR; the function keeps running/);
  sink.write('fine', 'd', 'stdout', 'other functions still log');
  await eventually(() => lines('fine').length === 1, 3000, 'another function logs');
});

logs.run();
