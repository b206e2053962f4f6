/** examples/stream's countdown, its handler called directly from its bundle: its sleep between items. */
import { mkdtempSync, rmSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLocal } from '../../adapters/local/build.js';
import { Metadata } from '../../runtime/core/metadata.js';
import type { ServiceDefinition } from '../../runtime/core/router.js';
import { withTimeout } from '../helpers.js';

type Count = (req: unknown, ctx: unknown) => AsyncGenerator<{ n: number }>;

let dir: string;
let count: Count;

/** A context as the handler reads it, around `signal`. */
const ctxOf = (signal: AbortSignal) => ({
  service: 'stream',
  signal,
  responseMetadata: new Metadata(),
  trailers: new Metadata(),
});

// ---
const countdown = suite('examples/stream Countdown.Count');

countdown.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'micro-fn-example-stream-'));
  const { file } = await buildLocal(join(process.cwd(), 'examples', 'stream', 'index.ts'), { outdir: dir });
  const { definition } = (await import(pathToFileURL(file).href)) as { definition: ServiceDefinition };
  const group = definition.handlers!.Countdown as { Count: Count };
  count = group.Count.bind(group);
});

countdown.after(() => rmSync(dir, { recursive: true, force: true }));

countdown(
  'at delay 0 sets no timer and leaves no abort listener: 2,000 items, 0 timers, at most 0 listeners',
  async () => {
    const signal = new AbortController().signal;
    const real = globalThis.setTimeout;
    let timers = 0;
    globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => (
      timers++,
      real(...args)
    )) as typeof setTimeout;
    let items = 0;
    let most = 0;
    try {
      for await (const _ of count({ from: 2000, delay: 0 }, ctxOf(signal))) {
        items++;
        most = Math.max(most, getEventListeners(signal, 'abort').length);
      }
    } finally {
      globalThis.setTimeout = real;
    }
    assert.equal([items, timers, most], [2000, 0, 0]);
  },
);

countdown('at delay 1 leaves no abort listener behind an item: 30 items, at most 0 listeners after each', async () => {
  const signal = new AbortController().signal;
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  let items = 0;
  let most = 0;
  try {
    for await (const _ of count({ from: 30, delay: 1 }, ctxOf(signal))) {
      items++;
      most = Math.max(most, getEventListeners(signal, 'abort').length);
    }
  } finally {
    process.off('warning', onWarning);
  }
  assert.equal([items, most], [30, 0]);
  assert.equal(
    warnings.map((w) => w.name),
    [],
  );
});

countdown('ends its sleep at once when the stream is cancelled: a 60 s wait ends at the abort', async () => {
  const controller = new AbortController();
  const it = count({ from: 2, delay: 60_000 }, ctxOf(controller.signal));
  assert.equal((await it.next()).value, { n: 2 });
  const next = it.next();
  controller.abort();
  assert.equal((await withTimeout(next, 5000, 'the sleep to end at the abort')).value, { n: 1 });
  assert.is(getEventListeners(controller.signal, 'abort').length, 0);
});

countdown.run();
