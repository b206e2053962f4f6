import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UnreachableNodes } from '../../../runtime/core/unreachable-nodes.js';

// ---
const nodes = suite('UnreachableNodes');

nodes('skips a node for its time, then forgets it', () => {
  const skip = new UnreachableNodes(1000);
  skip.add('a', 0);
  assert.ok(skip.has('a', 999));
  assert.not.ok(skip.has('a', 1000));
  assert.is(skip.size, 0, 'an expired node is dropped when asked about');
  assert.not.ok(skip.has('b', 0));
});

nodes('forgets a node that answered again, and never remembers with a time of 0', () => {
  const skip = new UnreachableNodes(1000);
  skip.add('a', 0);
  skip.delete('a');
  assert.not.ok(skip.has('a', 1));
  const never = new UnreachableNodes(0);
  never.add('a', 0);
  assert.is(never.size, 0);
});

nodes('holds 4096 nodes at most, forgetting the oldest first', () => {
  const skip = new UnreachableNodes(60_000);
  for (let i = 0; i < 5000; i++) skip.add(`n${i}`, i);
  assert.is(skip.size, 4096);
  assert.not.ok(skip.has('n0', 5000));
  assert.ok(skip.has('n4999', 5000));
});

nodes.run();
