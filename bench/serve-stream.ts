/**
 * A server stream of 100,000 small JSON values through `micro-fn serve` (gateway → pool → the pipe → a warm function
 * process, test/fixtures/streams' S.Count: a generator that yields without waiting; examples/stream's countdown
 * sleeps between items) against a bare node:http server process writing the same
 * NDJSON (one write per value, waiting for `drain`), read by the same fetch reader, alternating runs, each once serve's
 * pool is full and idle (no process starting beside it). Target (issue 16):
 * ≤ 1.3× the time to the first item, ≥ 0.8× items/s. Then the hard case, no target: as many streams back to back,
 * serve's pool not waited for, and the bare server's as many.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliRun, settlePool, startServe, stopServe } from './serve.js';
import { fmt, median, ratio } from './stats.js';
import { readLines, type Run } from './stream.js';

const COUNT = 100_000;
const RUNS = 15;

/** The bare server: its own process, as serve is; each value `{"i":k}` on its line, `drain` respected. */
const BARE = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  let n = 0;
  const more = () => {
    while (n < ${COUNT}) if (!res.write(JSON.stringify({ i: n++ }) + '\\n')) return void res.once('drain', more);
    res.end();
  };
  more();
});
server.listen(0, '127.0.0.1', () => console.log('http://127.0.0.1:' + server.address().port));
`;

export async function benchServeStream(): Promise<string[]> {
  const home = mkdtempSync(join(tmpdir(), 'micro-fn-bench-stream-'));
  const env = { ...process.env, MICRO_FN_HOME: home } as Record<string, string>;
  const servers: ChildProcess[] = [];
  let bare: ChildProcess | undefined;
  try {
    const gateway = await startServe(['--pool', '2'], env, servers);
    await cliRun(['deploy', 'test/fixtures/streams'], env);
    bare = spawn(process.execPath, ['-e', BARE], { stdio: ['ignore', 'pipe', 'inherit'] });
    const bareUrl = await new Promise<string>((resolve) =>
      bare!.stdout!.once('data', (d: Buffer) => resolve(`${d}`.trim())),
    );
    const ours: Run[] = [];
    const theirs: Run[] = [];
    const body = JSON.stringify({ count: COUNT });
    // A warm-up of each, then alternating runs.
    await readLines(`${gateway}/streams/S.Count`, body, COUNT);
    await readLines(bareUrl, '{}', COUNT);
    // Each run starts once serve's pool is full again: the process replacing the last one used would otherwise be
    // starting (~60 ms of a CPU) during the next run, ours or the bare server's, whichever came next.
    const settled = () => settlePool(gateway, home, 'streams', 2);
    for (let i = 0; i < RUNS; i++) {
      await settled();
      ours.push(await readLines(`${gateway}/streams/S.Count`, body, COUNT));
      await settled();
      theirs.push(await readLines(bareUrl, '{}', COUNT));
    }
    // The hard case: streams one after another, each sent as the last ended, serve's pool not waited for (its
    // replacement process starts beside the next stream); then the bare server as many times.
    const ourRow: Run[] = [];
    const theirRow: Run[] = [];
    await settled();
    for (let i = 0; i < RUNS; i++) ourRow.push(await readLines(`${gateway}/streams/S.Count`, body, COUNT));
    for (let i = 0; i < RUNS; i++) theirRow.push(await readLines(bareUrl, '{}', COUNT));
    const rowFirst = [median(ourRow.map((r) => r.first)), median(theirRow.map((r) => r.first))] as const;
    const rowRate = [median(ourRow.map((r) => r.perSecond)), median(theirRow.map((r) => r.perSecond))] as const;
    const first = [median(ours.map((r) => r.first)), median(theirs.map((r) => r.first))] as const;
    const rate = [median(ours.map((r) => r.perSecond)), median(theirs.map((r) => r.perSecond))] as const;
    // The ratio of each pair of runs next to each other, as the spread: a loaded machine moves both.
    const firstRatios = ours.map((r, i) => r.first / theirs[i]!.first);
    const rateRatios = ours.map((r, i) => r.perSecond / theirs[i]!.perSecond);
    const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}×`;
    return [
      `server stream of ${COUNT.toLocaleString('en')} values, median of ${RUNS} alternating runs (a warm process per stream):`,
      `  time to first item: serve ${fmt(first[0])}, bare node:http ${fmt(first[1])}: ${ratio(first[0], first[1])}, run by run ${spread(firstRatios)} (target ≤ 1.3×)`,
      `  items/s: serve ${Math.round(rate[0]).toLocaleString('en')}, bare node:http ${Math.round(rate[1]).toLocaleString('en')}: ${ratio(rate[0], rate[1])}, run by run ${spread(rateRatios)} (target ≥ 0.8×)`,
      `${RUNS} streams back to back, serve's pool not waited for (median):`,
      `  time to first item: serve ${fmt(rowFirst[0])}, bare node:http ${fmt(rowFirst[1])}: ${ratio(rowFirst[0], rowFirst[1])}`,
      `  items/s: serve ${Math.round(rowRate[0]).toLocaleString('en')}, bare node:http ${Math.round(rowRate[1]).toLocaleString('en')}: ${ratio(rowRate[0], rowRate[1])}`,
    ];
  } finally {
    bare?.kill();
    await stopServe(servers);
    rmSync(home, { recursive: true, force: true });
  }
}
