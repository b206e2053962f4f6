import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Fifo } from '../../../serve/broker/fifo.js';

// ---
const fifo = suite('Fifo');

fifo('gives back what was pushed in order, across its compaction', () => {
  const list = new Fifo();
  for (let i = 0; i < 5000; i++) list.push(i);
  const out: number[] = [];
  for (let i = 0; i < 3000; i++) out.push(list.shift()!);
  list.push(5000);
  assert.is(list.length, 2001);
  assert.is(list.peek(), 3000);
  assert.equal([...list].slice(0, 2), [3000, 3001]);
  while (list.length > 0) out.push(list.shift()!);
  assert.equal(
    out,
    Array.from({ length: 5001 }, (_, i) => i),
  );
  assert.is(list.shift(), undefined);
});

fifo('retains what a test keeps and merges in order', () => {
  const list = new Fifo();
  for (const n of [1, 4, 6, 9]) list.push(n);
  list.shift();
  list.retain((n) => n !== 6);
  list.merge([5, 2]);
  assert.equal([...list], [2, 4, 5, 9]);
});

fifo.run();
