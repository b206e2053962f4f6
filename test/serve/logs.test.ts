/** Function logs: no file-system error reaches serve, a removed folder is made again, each failure said once. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogSink, parseLogLine } from '../../serve/logs.js';
import { LogTail, logFiles } from '../../cli/log-tail.js';
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

// ---
const rotation = suite('LogSink rotation, read by LogTail');
let rotHome: string;
let rotSink: LogSink;
rotation.before.each(() => {
  rotHome = mkdtempSync(join(tmpdir(), 'micro-fn-logs-'));
});
rotation.after.each(async () => {
  await rotSink?.close();
  rmSync(rotHome, { recursive: true, force: true });
});

rotation(
  'rotates at 4 KiB; a follower reading while 2000 lines are written (some 22 rotations) gets each once, in order',
  async () => {
    // Enough files kept that none is removed before the follower reads it: what rotation removes is gone for anyone.
    rotSink = new LogSink(rotHome, false, () => {}, { maxBytes: 4096, keep: 100 });
    const path = LogSink.file(rotHome, 'fn');
    const tail = new LogTail(LogSink.folder(rotHome), path);
    const seen: string[] = [...tail.history().map((e) => e.text)];
    for (let i = 0; i < 2000; i++) {
      rotSink.write('fn', `inv${i}`, 'stdout', `line ${i}`);
      // Read now and then while serve writes and rotates, as `micro-fn logs -f` does.
      if (i % 37 === 0) {
        await sleep(1);
        seen.push(...tail.poll().map((e) => e.text));
      }
    }
    await rotSink.close();
    seen.push(...tail.poll().map((e) => e.text));
    tail.close();
    const numbers = seen.map((t) => Number(/line (\d+)$/.exec(t)![1]));
    assert.is(numbers.length, 2000, `lines read: ${numbers.length} of 2000`);
    assert.equal(numbers, [...numbers.keys()], 'each line once, in order');
    const files = logFiles(path);
    assert.ok(files.length > 20, `${files.length} files`);
    for (const file of files) assert.ok(statSync(file).size <= 4096, `${file} size`);
  },
);

rotation('history lists rotated files first: -n reaches across a rotation', async () => {
  rotSink = new LogSink(rotHome, false, () => {}, { maxBytes: 200, keep: 3 });
  for (let i = 0; i < 10; i++) rotSink.write('fn', 'a', 'stdout', `line ${i} ${'x'.repeat(40)}`);
  await rotSink.close();
  const path = LogSink.file(rotHome, 'fn');
  assert.ok(existsSync(`${path}.4`) && existsSync(`${path}.2`) && !existsSync(`${path}.1`), 'rotated 4 times, 3 kept');
  const texts = new LogTail(LogSink.folder(rotHome), path).history().map((e) => /line (\d)/.exec(e.text)![1]);
  // Two lines a file: 5 files made, the newest 4 kept.
  assert.equal(texts, ['2', '3', '4', '5', '6', '7', '8', '9'], 'the lines of the 4 files kept, oldest first');
});

rotation.run();

// ---
const parse = suite('parseLogLine');

parse('reads time, function, invocation, stream and text back; an invocation id may hold spaces', () => {
  assert.equal(parseLogLine('2024-05-01T12:00:00.000Z fn a b stderr: oh: no'), {
    time: '2024-05-01T12:00:00.000Z',
    function: 'fn',
    invocation: 'a b',
    stream: 'stderr',
    message: 'oh: no',
  });
  assert.is(parseLogLine('hand-written'), undefined);
});

parse.run();
