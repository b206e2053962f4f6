/**
 * The durable broker's retention: messages kept for a topic's first queue group go once older than the retention,
 * and so does a queue group that has had no member for the retention, with what it holds. Time before the broker
 * opened does not count: a serve down for a day does not drop its backlog as it starts.
 */
import { KEPT } from './records.js';
import type { BrokerState } from './state.js';

/** Drops what waited past the retention; says on serve's stderr what it dropped. */
export function expire(state: BrokerState): void {
  if (state.closed) return;
  const cutoff = Date.now() - state.retention;
  if (state.openedAt > cutoff) return;
  for (const groups of [...state.topics.values()]) {
    for (const group of [...groups.values()]) {
      if (!group.durable || group.members.length > 0) continue;
      if (group.queue === KEPT) {
        let dropped = 0;
        group.ready.retain((seq) => {
          const meta = state.meta.get(seq);
          if (meta && meta.at > cutoff) return true;
          state.write(state.queue.remove([group.topic, KEPT, seq]));
          state.unref(seq);
          dropped++;
          return false;
        });
        if (dropped > 0)
          state.report(
            `dropped ${dropped} message${dropped === 1 ? '' : 's'} of ${group.topic}: no queue group subscribed within the retention (serve --retention)`,
          );
        if (group.ready.length === 0) state.forget(group);
      } else if (group.left <= cutoff && group.busy === 0) {
        const held = group.ready.length;
        if (held > 0)
          state.report(
            `dropped ${held} message${held === 1 ? '' : 's'} of ${group.topic} for queue group ${group.queue}: it has had no member for the retention (serve --retention)`,
          );
        state.forget(group);
      }
    }
  }
}
