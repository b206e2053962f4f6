/**
 * The dead letters the durable broker keeps, as `micro-fn dlq` reads them: each with its reason and the failure of
 * every attempt, its body read from the message it still refers to. A replay hands them back in one transaction.
 */
import { deadLetterHeaders } from '../../runtime/core/broker.js';
import { MicroError } from '../../runtime/core/errors.js';
import type { DeadLetter } from '../../runtime/plugins/local/protocol.js';
import type { DeadLetterBox } from '../dead-letters.js';
import type { DeadKey, DeadRecord } from './records.js';
import type { BrokerState, Group } from './state.js';

/** A DeadLetterBox whose replay needs no publisher: the messages go back to their groups (`schedule` starts them). */
export type DurableDeadLetters = DeadLetterBox & { replay(topic: string): Promise<number> };

export function deadLetterBox(state: BrokerState, schedule: (group: Group) => void): DurableDeadLetters {
  return {
    async list(topic) {
      const out: DeadLetter[] = [];
      for (const { key, value } of deadOf(state, topic)) {
        const stored = state.messages.get(key[1]);
        if (!stored) continue;
        out.push({
          id: stored.id,
          topic,
          headers: {
            ...stored.headers,
            [deadLetterHeaders.topic]: topic,
            [deadLetterHeaders.reason]: value.reason,
            [deadLetterHeaders.attempts]: String(value.attempts),
          },
          body: new TextDecoder().decode(stored.body),
          at: value.at,
          attempts: value.failures,
        });
      }
      return out;
    },

    async replay(topic) {
      if (state.closed) throw new MicroError('micro-fn', 503, `the broker is closed: cannot replay ${topic}`);
      // One transaction (the writes of one event-loop turn): every dead letter goes back, or none does.
      const handed: [Group, number][] = [];
      let last: Promise<unknown> | undefined;
      for (const { key } of deadOf(state, topic)) {
        const [, seq, queue] = key;
        const meta = state.meta.get(seq);
        if (!meta) continue;
        // Back to the group that failed it (the others handled it), else to whoever takes the topic now.
        const own = state.topics.get(topic)?.get(queue);
        const groups = own && !own.gone && own.durable ? [own] : state.recipients(topic, true);
        meta.at = Date.now();
        meta.refs += groups.length - 1; // the dead letter's reference becomes the groups'
        state.deadBytes -= meta.size;
        last = state.dead.remove(key);
        for (const group of groups) {
          if (group.durable)
            last = state.queue.put([topic, group.queue, seq], { size: meta.size, at: meta.at, attempt: 1 });
          handed.push([group, seq]);
        }
      }
      if (last) await state.written(last);
      for (const [group, seq] of handed) group.ready.push(seq);
      for (const group of new Set(handed.map(([g]) => g))) schedule(group);
      return handed.length;
    },
  };
}

/** The dead letters of `topic`: keys [topic, seq, queue] sort after [topic], together (their separator, 0, sorts first). */
function* deadOf(state: BrokerState, topic: string): Generator<{ key: DeadKey; value: DeadRecord }> {
  for (const entry of state.dead.getRange({ start: [topic] as unknown as DeadKey })) {
    if (entry.key[0] !== topic) return;
    yield entry;
  }
}
