/**
 * The last lines of a function's log (serve/logs.ts) for the dashboard: read from the end of its file, and of the
 * file rotated before it when that one holds too few, so a page asking again and again reads a bounded amount.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LogSink, parseLogLine, type LogLine } from '../logs.js';

/** Bytes read from the end of one file at most. */
const TAIL_BYTES = 128 * 1024;

/** Up to `count` of the last lines of function `name`'s log, oldest first; none when it has no log. */
export function recentLines(home: string, name: string, count: number): LogLine[] {
  const path = LogSink.file(home, name);
  let lines = tail(path);
  if (lines.length < count) lines = [...tail(`${path}.1`), ...lines];
  return lines
    .slice(-count)
    .map((text) => parseLogLine(text))
    .filter((line): line is LogLine => line !== undefined);
}

/** The whole lines in the last TAIL_BYTES of `path` (a first one cut by the read left out). */
function tail(path: string): string[] {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return []; // no log yet, or rotated away meanwhile
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - TAIL_BYTES);
    const buffer = Buffer.alloc(size - start);
    const read = readSync(fd, buffer, 0, buffer.length, start);
    const lines = buffer.subarray(0, read).toString('utf8').split('\n');
    lines.pop(); // after the last newline: empty, or a line still being written
    if (start > 0) lines.shift();
    return lines;
  } finally {
    closeSync(fd);
  }
}
