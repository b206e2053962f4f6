/**
 * Opening the durable broker: its index is read from the store (groups, queue entries, dead letters: keys and small
 * values; bodies are not read). Messages nothing refers to are dropped, and so are references to messages that are
 * not there. A crash leaves neither (a message is written before what refers to it and removed after); this mends a
 * store damaged otherwise.
 */
import type { BrokerState } from './state.js';

/** Fills `state`'s index from its store. Every group found starts without members, as if its last one left now. */
export function loadIndex(state: BrokerState): void {
  const now = state.openedAt;
  const stored = new Set<number>();
  let last = 0;
  for (const seq of state.messages.getKeys()) {
    stored.add(seq);
    last = Math.max(last, seq);
  }
  for (const { key } of state.groups.getRange()) state.group(key[0], key[1], true).left = now;
  for (const { key, value } of state.queue.getRange()) {
    const [topic, queue, seq] = key;
    if (!stored.has(seq)) {
      state.write(state.queue.remove(key));
      continue;
    }
    const group = state.group(topic, queue, true);
    group.left = now;
    group.ready.push(seq);
    if (value.attempt > 1) group.retries.set(seq, { attempt: value.attempt, failures: value.failures ?? [] });
    state.index(seq, value.size, value.at);
  }
  for (const { key, value } of state.dead.getRange()) {
    if (!stored.has(key[1])) {
      state.write(state.dead.remove(key));
      continue;
    }
    state.index(key[1], value.size, value.published);
    state.deadBytes += value.size;
  }
  for (const seq of stored) if (!state.meta.has(seq)) state.write(state.messages.remove(seq));
  state.seq = last + 1;
  state.durable = last;
}
