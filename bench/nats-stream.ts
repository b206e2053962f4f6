/**
 * A server stream of 100,000 small JSON values over NATS, against a baseline in the same run on the same
 * nats-server: micro-fn (an async generator behind the NATS transport; credit flow control, sequence numbers, end
 * marker) vs a bare `nats` request answered by as many replies on the caller's inbox (no flow control, no ordering
 * check, a last empty reply as the end). Figures: time to the first item, and items per second over the whole stream;
 * the median of `rounds` rounds, the two taking turns.
 */
import { createInbox } from 'nats';
import { Metadata, createService } from 'micro-fn';
import { connectNats, createNatsTransport } from 'micro-fn/nats';
import { createMemoryRegistry } from 'micro-fn/memory';
import { startNatsServer } from '../test/nats-server.js';
import { fmt, ratio } from './stats.js';

const enc = new TextEncoder();

interface Run {
  first: number;
  total: number;
}

export async function benchNatsStream(n = 100_000, rounds = 5): Promise<string[]> {
  const server = await startNatsServer({ jetstream: false });
  const responder = await connectNats({ address: server.url, name: 'bare-streamer' });
  const caller = await connectNats({ address: server.url, name: 'bare-caller' });
  const transport = createNatsTransport({ address: server.url });
  const service = createService(
    {
      name: 'streamer',
      handlers: {
        S: {
          async *Count(req: { n: number }) {
            for (let i = 0; i < req.n; i++) yield { i };
          },
        },
      },
    },
    { registry: createMemoryRegistry(), transport },
  );
  try {
    responder.subscribe('bare.count', {
      callback: (_err, msg) => {
        const { n: count } = JSON.parse(new TextDecoder().decode(msg.data)) as { n: number };
        for (let i = 0; i < count; i++) responder.publish(msg.reply!, enc.encode(JSON.stringify({ i })));
        responder.publish(msg.reply!, new Uint8Array(0));
      },
    });
    await responder.flush();
    await service.start();
    const node = { id: service.id, address: service.address!, metadata: {} };

    const ours = async (): Promise<Run> => {
      const t0 = performance.now();
      const response = await transport.call(node, {
        id: crypto.randomUUID(),
        service: 'streamer',
        endpoint: 'S.Count',
        contentType: 'application/json',
        body: enc.encode(JSON.stringify({ n })),
        metadata: new Metadata(),
      });
      let first = 0;
      let count = 0;
      for await (const m of response.stream!) {
        if (count++ === 0) first = performance.now() - t0;
        JSON.parse(new TextDecoder().decode(m));
      }
      if (count !== n) throw new Error(`micro-fn: ${count} of ${n} items`);
      return { first, total: performance.now() - t0 };
    };
    const bare = (): Promise<Run> =>
      new Promise((resolve, reject) => {
        const t0 = performance.now();
        const inbox = createInbox();
        let first = 0;
        let count = 0;
        caller.subscribe(inbox, {
          callback: (_err, msg) => {
            if (msg.data.length === 0) {
              if (count !== n) reject(new Error(`bare: ${count} of ${n} items`));
              resolve({ first, total: performance.now() - t0 });
              return;
            }
            if (count++ === 0) first = performance.now() - t0;
            JSON.parse(new TextDecoder().decode(msg.data));
          },
          max: n + 1,
        });
        caller.publish('bare.count', enc.encode(JSON.stringify({ n })), { reply: inbox });
      });

    await ours(); // warm-up, both
    await bare();
    const a: Run[] = [];
    const b: Run[] = [];
    for (let r = 0; r < rounds; r++) {
      a.push(await ours());
      b.push(await bare());
    }
    const median = (runs: Run[], key: keyof Run) => runs.map((r) => r[key]).sort((x, y) => x - y)[runs.length >> 1]!;
    const [af, at, bf, bt] = [median(a, 'first'), median(a, 'total'), median(b, 'first'), median(b, 'total')];
    const rate = (ms: number) => Math.round(n / (ms / 1000));
    return [
      `micro-fn server stream over NATS   first item ${fmt(af)}  ${rate(at)} items/s  (${n} items, median of ${rounds})`,
      `bare nats request, many replies   first item ${fmt(bf)}  ${rate(bt)} items/s`,
      `time to first item ${ratio(af, bf)} the bare one; items/s ${ratio(rate(at), rate(bt))} the bare one`,
    ];
  } finally {
    await service.stop();
    await transport.close();
    await responder.close();
    await caller.close();
    await server.cleanup();
  }
}
