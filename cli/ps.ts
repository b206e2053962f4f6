import type { RuntimeStats } from '../runtime/plugins/local/protocol.js';
import { pluginOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { callRuntime, runtimeOption, withSession } from './plugins.js';

export const command = defineCommand({
  name: 'ps',
  summary: "what micro-fn serve runs: each function's processes, counts and p50/p99, the broker's backlog",
  usage: '',
  description: [
    'Prints, per function deployed to micro-fn serve (and per function of its Lambda API that was invoked): its',
    "processes (warm idle out of the pool's target now, starting), invocations running and queued, invocations,",
    'errors and cold starts since serve started, calls dropped before they started, and p50/p99 duration over the',
    'last 5 minutes; then the messages',
    "waiting per topic and queue group in serve's broker, and its dead letters. --json prints the same data",
    '(Runtime.Stats, which the dashboard reads too).',
  ].join('\n'),
  options: { ...runtimeOption, ...pluginOptions },
  examples: ['micro-fn ps', 'micro-fn ps --json'],
  async run({ values }) {
    return withSession(values, async (session) => {
      const stats = await callRuntime(session, 'Runtime.Stats', {}, { runtime: values.runtime });
      await write(process.stdout, values.json ? `${JSON.stringify(stats)}\n` : psText(stats));
      return 0;
    });
  },
});

/** `micro-fn ps` as a person reads it: a table of functions, then one of topics, then dead letters. */
export function psText(stats: RuntimeStats): string {
  const ms = (v: number | undefined) => (v === undefined ? '-' : v < 10 ? `${v.toFixed(2)}ms` : `${v.toFixed(1)}ms`);
  const minutes = Math.round(stats.functions[0]?.recent.seconds ?? 300) / 60;
  const out = [
    table(
      [
        'FUNCTION',
        'WARM/TARGET',
        'STARTING',
        'RUNNING',
        'QUEUED',
        'CALLS',
        'ERRORS',
        'COLD',
        'NOT STARTED',
        `P50 ${minutes}m`,
        `P99 ${minutes}m`,
      ],
      stats.functions.map((f) => [
        f.kind === 'lambda' ? `${f.name} (lambda)` : f.name,
        ...(f.pool
          ? [
              f.pool.target === undefined ? String(f.pool.warm) : `${f.pool.warm}/${f.pool.target}`,
              ...[f.pool.starting, f.pool.inflight, f.pool.queued + f.pool.backlog].map(String),
            ]
          : ['-', '-', '-', '-']),
        String(f.invocations),
        String(f.errors),
        String(f.coldStarts),
        String(f.notStarted),
        ms(f.recent.p50),
        ms(f.recent.p99),
      ]),
    ),
  ];
  if (stats.functions.length === 0) out.push('(no function is deployed)');
  const broker = stats.broker;
  if (broker) {
    const dead = new Map(broker.deadLetters.map((d) => [d.topic, d.count]));
    const topics = [...new Set([...broker.topics.map((t) => t.topic), ...dead.keys()])].sort();
    if (topics.length > 0) {
      out.push('');
      const rows = topics.flatMap((topic) => {
        const groups = broker.topics.filter((t) => t.topic === topic);
        const deadCount = String(dead.get(topic) ?? 0);
        if (groups.length === 0) return [[topic, '-', '0', '0', deadCount]];
        return groups.map((g, i) => [topic, g.group, String(g.waiting), String(g.inflight), i === 0 ? deadCount : '']);
      });
      out.push(table(['TOPIC', 'GROUP', 'WAITING', 'IN FLIGHT', 'DEAD LETTERS'], rows));
    }
  }
  return `${out.join('\n')}\n`;
}

/** Columns padded to their widest cell; numbers and names alike, left-aligned. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
