/** `npm run bench`: every benchmark, each comparing micro-fn with a baseline measured in the same run. */
import { benchAuth } from './auth.js';
import { benchBroker } from './broker.js';
import { benchColdBundle } from './cold-bundle.js';
import { benchCloudflare } from './cloudflare.js';
import { benchHttp } from './http-roundtrip.js';
import { benchInvoke } from './invoke.js';
import { benchLambda } from './lambda.js';
import { benchNats } from './nats.js';
import { benchNatsStore } from './nats-store.js';
import { benchNatsStream } from './nats-stream.js';
import { benchRunExit } from './run-exit.js';
import { benchSourceMaps } from './source-maps.js';
import { benchSpawner } from './spawner.js';
import { benchServeStream } from './serve-stream.js';
import { benchStream } from './stream.js';
import { benchStore } from './store.js';
import { benchSync } from './sync.js';
import { benchWebSocket } from './websocket.js';
import { benchObserve } from './observe.js';
import { benchTrace } from './trace.js';

const benches: [string, () => Promise<string[]>][] = [
  ['HTTP transport round trip vs bare node:http JSON echo', () => benchHttp()],
  ['server stream of 100,000 values over the HTTP listener vs bare node:http NDJSON', () => benchStream()],
  ['bidi echo round trips over WebSocket vs HTTP/1.1 full duplex', () => benchWebSocket()],
  ['micro-fn invoke vs node -e 0', () => benchInvoke()],
  ['local spawner (micro-fn serve): cold, warm, throughput', () => benchSpawner()],
  [
    'cold start of a 1 MB bundle (the AWS SDK client) and helloworld, code cache vs plain node',
    () => benchColdBundle(),
  ],
  ['streams through serve: a server stream of 100,000 values vs a bare node:http server', () => benchServeStream()],
  ['source maps: micro-fn invoke and a function process start, maps lazy vs eager vs off', () => benchSourceMaps()],
  ["serve's request log and stats: warm-call p50/p99 with them on vs off", () => benchObserve()],
  [
    "serve's durable broker vs the MemoryBroker: publish latency, publish → handled, serve's RSS with a backlog",
    () => benchBroker(),
  ],
  [
    'store: get/set p50 from a warm function vs lmdb directly; the counter example, 100 concurrent invocations',
    () => benchStore(),
  ],
  ['sync: lock + release vs the same store writes (local, nats), a handover to a waiter', () => benchSync()],
  ['serve --auth vs no --auth: warm-call latency and throughput through the gateway', () => benchAuth()],
  ['tracing exporting vs off: warm-call latency through the gateway', () => benchTrace()],
  [
    'NATS: transport vs bare request/reply, JetStream-triggered invocations, registry delete markers',
    () => benchNats(),
  ],
  [
    'NATS store: get/set p50 from a warm function vs nats.js KV directly; the counter example, 100 concurrent invocations',
    () => benchNatsStore(),
  ],
  ['NATS stream: a server stream of 100,000 items vs a bare request with many replies', () => benchNatsStream()],
  ['one-shot exit: micro-fn run over NATS vs over HTTP, from the reply to the exit', () => benchRunExit()],
  ['Lambda: helloworld bundle/zip size, cold start under aws-lambda-ric vs plain node', () => benchLambda()],
  ['Cloudflare Workers (miniflare): bundle size, cold start, latency vs a bare module worker', () => benchCloudflare()],
];

const only = process.argv[2];
for (const [title, bench] of benches) {
  if (only && !title.toLowerCase().includes(only.toLowerCase())) continue;
  console.log(`\n## ${title}`);
  for (const line of await bench()) console.log(line);
}
