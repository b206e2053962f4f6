/**
 * A bounded fuzz of what listens: serve's gateway (mucp over HTTP), its Lambda API, and the `micro-fn run` listener.
 * A fixed seed makes 3,000 requests (random methods, paths, headers and bodies: truncated JSON, huge headers, odd
 * encodings, garbage bytes, lying lengths) over raw sockets and fetch. Every answer that is an error must be error
 * JSON (AWS's shape on the Lambda API); the processes must stay up, answer a normal request after, and come back
 * near their resident memory and open file descriptors from before. The counts are printed.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { readCredential } from '../../runtime/plugins/local/credential.js';
import { cli, controlHeaders, start, tempHome, type Running } from '../cli/helpers.js';
import { signedFetch } from '../adapters/lambda/helpers.js';
import { eventually, sleep, withTimeout } from '../helpers.js';

const SEED = 0x13f00d;
const REQUESTS = { gateway: 1500, lambda: 900, run: 600 } as const;
const AT_ONCE = 16;

/** mulberry32: a small seeded PRNG, so every run sends the same requests. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(list: readonly T[]): T => list[int(list.length)]!;
const chance = (p: number) => random() < p;
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

type Target = 'gateway' | 'lambda' | 'run';

interface Fuzzed {
  method: string;
  path: string;
  headers: [string, string][];
  body: Buffer;
  /** Sent as raw bytes (lengths may lie, headers may be invalid), else through fetch. */
  raw: boolean;
  /** Raw bytes that are not HTTP at all. */
  garbage?: Buffer;
}

const JSON_BODIES = [
  '{}',
  '{"name":"Ada"}',
  '{"name":',
  '{"name":"Ada"',
  '[1,2,',
  'null',
  '"just a string"',
  '{"name":"\\ud800"}',
  '{"FunctionName":"fz","Code":{"ZipFile":"UEsDBBQ="},"Role":"r","Handler":"h","Runtime":"nodejs22.x"}',
  '{"bundle":"/etc/passwd"}',
  '{"topic":"orders","payload":{"x":1}}',
  `{"deep":${'['.repeat(5000)}${']'.repeat(5000)}}`,
];
const CONTENT_TYPES = [
  'application/json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/octet-stream',
  'application/json; charset=utf-16',
  'multipart/form-data; boundary=x',
  '*/*',
  '',
];

function body(): Buffer {
  switch (int(8)) {
    case 0:
      return Buffer.alloc(0);
    case 1:
      return bytes(int(2048));
    case 2:
      return Buffer.from(pick(JSON_BODIES));
    case 3: {
      const text = pick(JSON_BODIES);
      return Buffer.from(text.slice(0, int(text.length + 1)));
    }
    case 4:
      return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(pick(JSON_BODIES), 'utf16le')]);
    case 5:
      return Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x90, 0x28, 0xbc]); // invalid UTF-8
    case 6:
      return chance(0.5) ? Buffer.alloc(1024 * 1024 + 1 + int(4096), 0x61) : Buffer.alloc(int(300_000), 0x20);
    default:
      return Buffer.from(JSON.stringify({ name: 'x'.repeat(int(5000)) }));
  }
}

function headerSet(target: Target): [string, string][] {
  const headers: [string, string][] = [];
  if (chance(0.7)) headers.push(['content-type', pick(CONTENT_TYPES)]);
  if (chance(0.3))
    headers.push(['micro-service', pick(['helloworld', 'micro-fn', 'nobody', '', 'x'.repeat(300), '../etc'])]);
  if (chance(0.3))
    headers.push(['micro-endpoint', pick(['Greeter.Hello', 'Runtime.List', 'Runtime.Deploy', 'X', '.', 'a.b.c', ''])]);
  if (chance(0.2)) headers.push(['micro-id', pick(['1', 'x'.repeat(2000), '\t'])]);
  if (chance(0.1)) headers.push(['expect', pick(['100-continue', 'bogus', '200-ok'])]);
  if (chance(0.05)) headers.push(['x-huge', 'h'.repeat(8_000 + int(16_000))]);
  if (chance(0.05)) for (let i = 0; i < 150; i++) headers.push([`x-many-${i}`, String(i)]);
  if (chance(0.1)) headers.push(['micro-timeout', pick(['-1', '0', 'NaN', '99999999999999', 'abc'])]);
  if (chance(0.1)) headers.push(['content-encoding', pick(['gzip', 'br', 'identity', 'x-bogus'])]);
  if (chance(0.1))
    headers.push([
      'authorization',
      pick(['Bearer nope', 'Basic Zm9vOmJhcg==', 'AWS4-HMAC-SHA256 Credential=x', 'Bearer']),
    ]);
  if (target === 'lambda') {
    if (chance(0.3)) headers.push(['x-amz-invocation-type', pick(['RequestResponse', 'Event', 'DryRun', 'Nope'])]);
    if (chance(0.2)) headers.push(['x-amz-date', pick(['20240101T000000Z', 'garbage', '99999999T999999Z'])]);
    if (chance(0.1)) headers.push(['x-amz-log-type', 'Tail']);
  }
  return headers;
}

const GATEWAY_PATHS = [
  '/',
  '/health',
  '/healthz',
  '/helloworld/Greeter.Hello',
  '/helloworld/Greeter.Nope',
  '/micro-fn/Runtime.List',
  '/micro-fn/Runtime.Deploy',
  '/micro-fn/Broker.Publish',
  '/micro-fn/Dlq.List',
  '/nobody/X.Y',
  '/%',
  '/%ZZ/A.B',
  '/a/b/c',
  '/../../etc/passwd',
  '//',
  '/helloworld/',
  `/${'a'.repeat(9000)}/B.C`,
  '/helloworld/Greeter.Hello?x=1&y=%00',
  '*',
];
const LAMBDA_PATHS = [
  '/2015-03-31/functions',
  '/2015-03-31/functions/',
  '/2015-03-31/functions/fz',
  '/2015-03-31/functions/fz/configuration',
  '/2015-03-31/functions/fz/code',
  '/2015-03-31/functions/fz/versions',
  '/2015-03-31/functions/fz/aliases',
  '/2015-03-31/functions/fz/aliases/live',
  '/2015-03-31/functions/fz/invocations',
  '/2015-03-31/functions/%E0%A4%A/invocations',
  '/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:fz:1/invocations',
  '/2015-03-31/functions/fz?Qualifier=%',
  `/2015-03-31/functions/${'f'.repeat(5000)}`,
  '/2015-03-31/layers',
];
const METHODS = [
  'GET',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'CONNECT',
  'FOO',
  'post',
  'M-SEARCH',
];

function fuzzed(target: Target): Fuzzed {
  const raw = chance(0.7);
  if (raw && chance(0.08))
    return { method: '', path: '', headers: [], body: Buffer.alloc(0), raw, garbage: bytes(1 + int(600)) };
  let method = pick(METHODS);
  let path = target === 'lambda' ? pick(LAMBDA_PATHS) : pick(GATEWAY_PATHS);
  const headers = headerSet(target);
  if (target === 'run') {
    // A request the listener answers itself: one that reached the function would use up its one invocation.
    const refused = pick(['method', 'route', 'no-endpoint', 'too-large', 'expect'] as const);
    const drop = (name: string) => headers.splice(0, headers.length, ...headers.filter(([k]) => k !== name));
    drop('micro-endpoint');
    drop('expect');
    if (refused === 'method') method = pick(METHODS.filter((m) => m !== 'POST' && m !== 'GET'));
    else if (refused === 'route') ((method = 'POST'), (path = pick(['/a/b/c', '//', '/helloworld/'])));
    else if (refused === 'no-endpoint') ((method = 'POST'), (path = '/'));
    else if (refused === 'too-large') ((method = 'POST'), (path = '/helloworld/Greeter.Hello'));
    else ((method = 'POST'), (path = '/helloworld/Greeter.Hello'), headers.push(['expect', 'bogus']));
    const payload = refused === 'too-large' ? Buffer.alloc(1024 * 1024 + 1 + int(1000), 0x61) : body();
    return { method, path, headers, body: payload, raw: true };
  }
  return { method, path, headers, body: body(), raw };
}

interface Answer {
  status?: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `f` on its own connection; resolves with the final answer, or none when the connection closed without one.
 * `honest`: Content-Length always tells the truth (a lie could turn part of the body into a second request).
 */
function sendRaw(base: string, f: Fuzzed, honest: boolean): Promise<Answer | undefined> {
  const { port } = new URL(base);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseAnswer(Buffer.concat(chunks), f.method));
    };
    const timer = setTimeout(finish, 15_000);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (parseAnswer(Buffer.concat(chunks), f.method)?.complete) finish();
    });
    socket.on('close', finish);
    socket.on('error', finish);
    socket.on('connect', () => {
      if (f.garbage) return void socket.end(f.garbage);
      const lie = !honest && chance(0.1);
      const length = lie ? f.body.length + pick([-1, 1, 100, -f.body.length]) : f.body.length;
      const chunked = !lie && chance(0.1);
      const head = [`${f.method} ${f.path} HTTP/1.1`, 'host: 127.0.0.1', ...f.headers.map(([k, v]) => `${k}: ${v}`)];
      head.push(chunked ? 'transfer-encoding: chunked' : `content-length: ${Math.max(0, length)}`);
      if (chance(0.05)) head.push('x-binary: \u00ff\u0001\u00e9');
      const payload = chunked
        ? Buffer.concat([
            Buffer.from(`${f.body.length.toString(16)}\r\n`),
            f.body,
            Buffer.from(chance(0.2) ? '\r\nzz\r\n' : '\r\n0\r\n\r\n'),
          ])
        : f.body;
      socket.write(Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'));
      socket.end(payload);
    });
  });
}

/** The last non-1xx answer in `data`, when its head has arrived; `complete` once its body has too. */
function parseAnswer(data: Buffer, method: string): (Answer & { complete: boolean }) | undefined {
  let text = data.toString('latin1');
  while (/^HTTP\/1\.1 1\d\d /.test(text) && text.includes('\r\n\r\n')) text = text.slice(text.indexOf('\r\n\r\n') + 4);
  const end = text.indexOf('\r\n\r\n');
  if (!text.startsWith('HTTP/') || end < 0) return undefined;
  const [status, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const body = Buffer.from(text.slice(end + 4), 'latin1');
  const length = Number(headers['content-length'] ?? 0);
  return {
    status: Number(/^HTTP\/1\.1 (\d+)/.exec(status!)?.[1]),
    headers,
    body: body.subarray(0, length).toString('utf8'),
    complete: body.length >= length || method === 'HEAD',
  };
}

async function sendFetch(base: string, f: Fuzzed, target: Target, signed: boolean): Promise<Answer | undefined> {
  const method =
    f.method.toUpperCase() === 'POST' || f.method === 'post' ? 'POST' : pick(['GET', 'POST', 'PUT', 'DELETE']);
  const text = f.body.length > 0 && method !== 'GET' ? f.body.toString('latin1') : undefined;
  const headers = Object.fromEntries(f.headers.filter(([k, v]) => k !== 'expect' && !/[^\t\x20-\x7e]/.test(v)));
  try {
    const res =
      target === 'lambda' && signed
        ? await signedFetch(`${base}${f.path}`, { method, body: text, headers }, lambdaKeys)
        : await fetch(`${base}${f.path}`, { method, body: text, headers });
    return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
  } catch {
    return undefined;
  }
}

interface Tally {
  requests: number;
  statuses: Record<string, number>;
  resets: number;
  bad: string[];
}

/** An error answer must be error JSON: go-micro's on mucp, AWS's on the Lambda API. */
function check(target: Target, f: Fuzzed, answer: Answer | undefined, tally: Tally): void {
  tally.requests++;
  if (!answer || answer.status === undefined || Number.isNaN(answer.status)) return void tally.resets++;
  tally.statuses[answer.status] = (tally.statuses[answer.status] ?? 0) + 1;
  const what = `${f.garbage ? 'garbage' : `${f.method} ${f.path.slice(0, 60)}`} -> ${answer.status} ${answer.body.slice(0, 120)}`;
  if (answer.status >= 500 && answer.status !== 503 && answer.status !== 504) tally.bad.push(`5xx: ${what}`);
  if (answer.status < 400 || f.method === 'HEAD') return;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    return void tally.bad.push(`not JSON: ${what}`);
  }
  const aws = target === 'lambda' && f.path.startsWith('/2015-03-31/') && !answer.headers['micro-error'];
  if (aws) {
    if (
      typeof json.Type !== 'string' ||
      typeof (json.message ?? json.Message) !== 'string' ||
      !answer.headers['x-amzn-errortype']
    )
      tally.bad.push(`not AWS's error shape: ${what}`);
  } else if (
    json.code !== answer.status ||
    typeof json.detail !== 'string' ||
    typeof json.id !== 'string' ||
    typeof json.status !== 'string'
  )
    tally.bad.push(`not error JSON: ${what}`);
}

let scratch: ReturnType<typeof tempHome>;
let serve: Running;
let run: Running;
let gateway: string;
let runAddress: string;
let lambdaKeys: { accessKeyId: string; secretAccessKey: string };

const usage = (pid: number) => ({
  rss: Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024,
  fds: readdirSync(`/proc/${pid}/fd`).length,
});

async function fuzz(target: Target, base: string, count: number): Promise<Tally> {
  const tally: Tally = { requests: 0, statuses: {}, resets: 0, bad: [] };
  const requests = Array.from({ length: count }, () => ({ f: fuzzed(target), signed: chance(0.3) }));
  let next = 0;
  // AT_ONCE senders, each taking the next request when its last is answered.
  const sender = async () => {
    for (let i = next++; i < requests.length; i = next++) {
      const { f, signed } = requests[i]!;
      const answer = f.raw ? await sendRaw(base, f, target === 'run') : await sendFetch(base, f, target, signed);
      check(target, f, answer, tally);
    }
  };
  await Promise.all(Array.from({ length: AT_ONCE }, sender));
  return tally;
}

function report(
  name: string,
  t: Tally,
  before: { rss: number; fds: number },
  after: { rss: number; fds: number },
): void {
  const statuses = Object.entries(t.statuses)
    .map(([s, n]) => `${s}×${n}`)
    .join(' ');
  console.log(
    `  ${name}: ${t.requests} requests, ${t.resets} without an answer (reset/closed); ${statuses}; RSS ${(before.rss / 2 ** 20).toFixed(1)} → ${(after.rss / 2 ** 20).toFixed(1)} MiB, fds ${before.fds} → ${after.fds}`,
  );
}

const MiB = 2 ** 20;

// ---
const fuzzSuite = suite('fuzz: serve gateway, Lambda API, micro-fn run');

fuzzSuite.before(async () => {
  scratch = tempHome();
  const env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--quiet'], env);
  const [, address] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  gateway = address!;
  const deployed = await cli(['deploy', 'examples/helloworld'], env, { timeout: 60_000 });
  assert.is(deployed.code, 0, deployed.stderr);
  lambdaKeys = readCredential(scratch.home)?.aws ?? { accessKeyId: 'micro-fn', secretAccessKey: 'local' };
  run = start(['run', 'examples/helloworld', '--address', '127.0.0.1:0'], env);
  const [, listening] = await run.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000);
  runAddress = listening!;
});

fuzzSuite.after(async () => {
  for (const p of [run, serve]) {
    p.child.kill('SIGTERM');
    await p.exited(15_000).catch(() => p.kill());
  }
  scratch.cleanup();
});

const hello = async (base: string) =>
  withTimeout(
    fetch(`${base}/helloworld/Greeter.Hello`, {
      method: 'POST',
      body: '{"name":"Ada"}',
      headers: { 'content-type': 'application/json' },
    }),
    15_000,
    'a normal call',
  );

fuzzSuite(
  `${REQUESTS.gateway} requests to serve's gateway and ${REQUESTS.lambda} to its Lambda API (seed ${SEED}): no crash, every error JSON, memory and fds back`,
  async () => {
    // Warm: the paths the fuzz takes have run once, so the baseline is not a cold process's.
    for (let i = 0; i < 5; i++) assert.is((await hello(gateway)).status, 200);
    await sleep(500);
    const pid = serve.child.pid!;
    const before = usage(pid);
    const mucp = await fuzz('gateway', gateway, REQUESTS.gateway);
    const lambda = await fuzz('lambda', gateway, REQUESTS.lambda);
    assert.is(serve.child.exitCode, null, `serve is running: ${serve.stderr().slice(-2000)}`);
    const res = await hello(gateway);
    assert.is(res.status, 200);
    assert.equal(await res.json(), { message: 'Hello Ada' });
    const list = await withTimeout(
      fetch(`${gateway}/micro-fn/Runtime.List`, { method: 'POST', body: '{}', headers: controlHeaders(scratch.home) }),
      5000,
      'Runtime.List',
    );
    assert.is(list.status, 200);
    const missing = await withTimeout(
      signedFetch(`${gateway}/2015-03-31/functions/nobody`, {}, lambdaKeys),
      5000,
      'GetFunction',
    );
    assert.is(missing.status, 404, 'the Lambda API answers a signed request');
    // Connections the fuzz left are closed by serve's timeouts; processes it started exit.
    let after = usage(pid);
    await eventually(
      () => {
        after = usage(pid);
        return after.fds <= before.fds + 4 && after.rss <= before.rss + 64 * MiB;
      },
      30_000,
      'serve back near its baseline',
      500,
    ).catch(() => {});
    report('serve gateway', mucp, before, after);
    report('serve Lambda API', lambda, before, after);
    assert.equal([...mucp.bad, ...lambda.bad].slice(0, 20), []);
    assert.ok(after.fds <= before.fds + 4, `serve's file descriptors: ${before.fds} before, ${after.fds} after`);
    assert.ok(
      after.rss <= before.rss + 64 * MiB,
      `serve's RSS: ${before.rss / MiB} MiB before, ${after.rss / MiB} after`,
    );
  },
);

fuzzSuite(
  `${REQUESTS.run} requests to the micro-fn run listener (seed ${SEED}): it keeps its one invocation for a normal call`,
  async () => {
    const pid = run.child.pid!;
    const before = usage(pid);
    const tally = await fuzz('run', runAddress, REQUESTS.run);
    assert.is(run.child.exitCode, null, `micro-fn run is running: ${run.stderr().slice(-2000)}`);
    let after = usage(pid);
    await eventually(
      () => {
        after = usage(pid);
        return after.fds <= before.fds + 4;
      },
      15_000,
      'run back near its baseline',
      500,
    ).catch(() => {});
    report('micro-fn run', tally, before, after);
    assert.equal(tally.bad.slice(0, 20), []);
    assert.ok(after.fds <= before.fds + 4, `run's file descriptors: ${before.fds} before, ${after.fds} after`);
    assert.ok(
      after.rss <= before.rss + 64 * MiB,
      `run's RSS: ${before.rss / MiB} MiB before, ${after.rss / MiB} after`,
    );
    const res = await hello(runAddress);
    assert.is(res.status, 200);
    assert.equal(await res.json(), { message: 'Hello Ada' });
    assert.is(await run.exited(15_000), 0, 'it served its one invocation and ended');
  },
);

fuzzSuite.run();
