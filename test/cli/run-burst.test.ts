/**
 * `micro-fn run` under a burst: 20 connections opened first, then one request written on each at once, against a
 * handler that answers at once. Every request that arrived gets an answer (1 × 200, 19 × 503), never a reset.
 * A real process per run, 100 runs: about a minute.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { start, tempHome, type Running } from './helpers.js';
import { burst, tally } from '../runtime/core/burst.js';

const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

// ---
const run = suite('micro-fn run: a burst of pre-connected requests');
let scratch: ReturnType<typeof tempHome>;
const running: Running[] = [];
run.before(() => {
  scratch = tempHome();
});
run.after.each(() => {
  for (const r of running.splice(0)) r.kill();
});
run.after(() => scratch.cleanup());

function launch(args: string[]): Running {
  const r = start(['run', ...args], { MICRO_FN_HOME: scratch.home });
  running.push(r);
  return r;
}

run('answers 20 pre-connected requests written at once with 1 × 200 and 19 × 503, 100 of 100 times', async () => {
  const runs: Record<string, number>[] = [];
  for (let i = 0; i < 100; i++) {
    const fn = launch(['examples/helloworld']);
    const [, address] = await fn.waitFor(LISTENING);
    runs.push(tally(await burst(address!, '/helloworld/Greeter.Hello', '{"name":"Ada"}')));
    assert.is(await fn.exited(), 0);
    running.splice(running.indexOf(fn), 1);
  }
  const bad = runs.filter((counts) => counts[200] !== 1 || counts[503] !== 19);
  assert.is(bad.length, 0, `${bad.length} of 100 runs were not 1 × 200 + 19 × 503: ${JSON.stringify(bad.slice(0, 5))}`);
});

run.run();
