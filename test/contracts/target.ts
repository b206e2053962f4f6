/**
 * The target contract: what every target (serve's local processes, AWS Lambda, Cloudflare Workers, and any
 * next one) must do on its real platform, asserted once here. A platform's test file starts the platform with
 * the suite's functions and translates HTTP and messages to it: a TargetHost, and nothing more.
 * @example
 * // test/adapters/<target>/contract.test.ts
 * targetContract('Deno', startDeno, { noMessages: '`deno serve` serves HTTP only: Deno has no queue' }).run();
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { eventually, sleep, withTimeout } from '../helpers.js';
import type { SocketResult, SocketScript } from './socket-script.js';
import { STREAM_FUNCTIONS, streamTests, type StreamOptions } from './target-streams.js';

/** A function the suite needs deployed. */
export interface TargetFunction {
  /** Its `defineFunction` name: the service in its URLs, and how the suite names it to the host. */
  name: string;
  /** Its entry, relative to the repository root. */
  entry: string;
}

/** What every host deploys: the two examples as users write them, and a probe for what they cannot show. */
export const TARGET_FUNCTIONS: readonly TargetFunction[] = [
  { name: 'helloworld', entry: 'examples/helloworld/index.ts' },
  { name: 'events', entry: 'examples/events/index.ts' },
  // Metadata both ways, and which loaded instance served a request: see the fixture.
  { name: 'contract', entry: 'test/fixtures/contract/index.ts' },
];

/** What the platform did with one message: acked, or kept for another try after the host's own attempts. */
export type Settlement = { acked: true } | { acked: false; attempts: number };

/** How a host hands a function broker messages the way its platform does. */
export interface MessageSource {
  /**
   * Delivers `payload` (a JSON value) on `topic` to function `fn` as the platform's queue or broker does, and
   * resolves once the platform has settled it: acked, or not acked after `attempts` runs of the function.
   */
  deliver(fn: string, topic: string, payload: unknown): Promise<Settlement>;
  /**
   * Runs of a failing message before the host gives up on it: where the host redelivers itself (serve's broker:
   * 5, then a dead letter), that limit; where the platform's queue retries later, outside the test (an SQS
   * record in batchItemFailures, a Workers `message.retry()`), 1.
   */
  readonly attempts: number;
}

/**
 * One target on its real platform, with every TARGET_FUNCTIONS entry deployed (built with the target's build,
 * run as the platform runs it). `fn` is always one of their names. Every method is bounded by the host.
 */
export interface TargetHost {
  /**
   * Sends an HTTP request to function `fn` as its platform's front does (serve's gateway, a Lambda Function URL,
   * a Worker's route, `deno serve`) and resolves with the Response, whatever its status. `path` starts with `/`.
   */
  fetch(fn: string, path: string, init?: RequestInit): Promise<Response>;
  /**
   * Resolves once `fn` has an instance loaded and waiting for an invocation (a warm serve process, an initialized
   * execution environment, a loaded isolate), and what it wrote while loading is in `output(fn)`.
   */
  ready(fn: string): Promise<void>;
  /** Everything `fn` has written to stdout and stderr so far, in order: its log on the platform. */
  output(fn: string): Promise<string>;
  /**
   * The platform's message source. A host without one (Deno under `deno serve`) leaves it out and passes
   * `noMessages` with the reason to targetContract: the message tests are then skipped, and say why.
   */
  readonly messages?: MessageSource;
  /**
   * Opens a WebSocket to `fn` at `path` as a browser would (GET with `Upgrade: websocket`), plays `script` and
   * resolves with the frames that came back once it closed; a refusal before the upgrade resolves with its HTTP
   * status and body. Required of a host that passes `streams: true`.
   */
  socket?(fn: string, path: string, script: SocketScript): Promise<SocketResult>;
  /** Stops every process, server and socket the host started, and removes its files. */
  close(): Promise<void>;
}

export interface TargetContractOptions {
  /** Why the host has no message source, when it has none: its message tests are skipped with this reason. */
  noMessages?: string;
  /**
   * The host streams over HTTP both ways and over WebSocket: the stream tests (target-streams.ts) run, with
   * STREAM_FUNCTIONS deployed too.
   */
  streams?: boolean | StreamOptions;
}

/** Starts a host with `functions` deployed; it cleans up after itself when it fails to start. */
export type StartHost = (functions: readonly TargetFunction[]) => Promise<TargetHost>;

interface Context {
  host?: TargetHost;
  /** Why the host did not start. */
  failed?: unknown;
}

const HELLO_400 = { id: 'helloworld', code: 400, detail: 'name is required', status: 'Bad Request' };
/** The default limit of a request body on every host. */
const MAX_BODY = 1_048_576;
/** How long the suite looks for an extra log line after the expected one arrived. */
const GRACE_MS = 300;

const post = (body: string, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  body,
  headers: { 'content-type': 'application/json', ...headers },
});

/** A helloworld request whose body is `size` bytes of JSON. */
const nameOfSize = (size: number) => `{"name":"${'x'.repeat(size - '{"name":""}'.length)}"}`;

const countOf = (text: string, pattern: RegExp) => [...text.matchAll(new RegExp(pattern, 'g'))].length;

/** The instances of the contract fixture that logged their load in `output`. */
const loadedIn = (output: string) => new Set([...output.matchAll(/contract: instance (\w+) loaded/g)].map((m) => m[1]));

/** The error JSON of `res`, checked: `status`, the same JSON in the body and in `Micro-Error`, its code. */
async function errorOf(res: Response, status: number): Promise<Record<string, unknown>> {
  const header = res.headers.get('micro-error');
  const body = (await res.json()) as Record<string, unknown>;
  assert.is(res.status, status, `HTTP status ${status}: ${JSON.stringify(body)}`);
  assert.ok(header, 'a Micro-Error header');
  assert.equal(JSON.parse(header), body, 'Micro-Error carries the error JSON of the body');
  assert.is(body.code, status, 'the error JSON has the status as its code');
  assert.type(body.status, 'string');
  return body;
}

/**
 * Resolves once `read()` stops growing (two reads 50 ms apart agree): for a host's `ready()`, whose output comes
 * through pipes and files a little after the instance said it is ready. Rejects after 5 s of growth.
 */
export async function outputSettled(read: () => Promise<string>): Promise<void> {
  const end = Date.now() + 5000;
  let last = await read();
  for (;;) {
    await sleep(50);
    const now = await read();
    if (now === last) return;
    if (Date.now() > end) throw new Error('the output was still growing after 5 s');
    last = now;
  }
}

/**
 * Registers the contract for the host `start` makes, as one uvu suite named after `name`, and returns it: call
 * `.run()` (or hand it to a helper that runs it only where the platform is installed).
 */
export function targetContract(name: string, start: StartHost, options: TargetContractOptions = {}) {
  const test = suite<Context>(`${name}: target contract`, {});
  // A host without a message source says why; its message tests show as skipped, never as passed.
  const messageTest = options.noMessages === undefined ? test : test.skip;
  if (options.noMessages !== undefined) console.log(`  (${name}: message tests skipped: ${options.noMessages})`);

  test.before(async (ctx) => {
    // uvu swallows an error thrown by `before` (its runner returns from `finally`) and reports nothing: keep it,
    // and fail every test with it.
    try {
      const functions = options.streams ? [...TARGET_FUNCTIONS, ...STREAM_FUNCTIONS] : TARGET_FUNCTIONS;
      ctx.host = await withTimeout(start(functions), 180_000, `starting the ${name} host`);
    } catch (err) {
      ctx.failed = err;
    }
  });
  test.after(async (ctx) => {
    const host = ctx.host;
    ctx.host = undefined; // after() runs again when it throws: never close twice
    await host?.close();
  });

  const hostOf = (ctx: Context): TargetHost => {
    if (!ctx.host) throw ctx.failed ?? new Error(`the ${name} host did not start`);
    return ctx.host;
  };
  const call = (ctx: Context, fn: string, path: string, init?: RequestInit) =>
    withTimeout(hostOf(ctx).fetch(fn, path, init), 30_000, `${name}: ${init?.method ?? 'GET'} ${path}`);
  const messagesOf = (ctx: Context): MessageSource => {
    const messages = hostOf(ctx).messages;
    if (!messages) throw new Error(`the ${name} host has no message source: declare it with noMessages and why`);
    return messages;
  };
  const deliver = (ctx: Context, topic: string, payload: unknown) =>
    withTimeout(messagesOf(ctx).deliver('events', topic, payload), 60_000, `${name}: a message on ${topic}`);

  test('answers helloworld Greeter.Hello {"name":"Ada"} with {"message":"Hello Ada"}', async (ctx) => {
    const res = await call(ctx, 'helloworld', '/helloworld/Greeter.Hello', post('{"name":"Ada"}'));
    assert.is(res.status, 200);
    assert.is(res.headers.get('content-type'), 'application/json');
    assert.equal(await res.json(), { message: 'Hello Ada' });
  });

  test('answers Greeter.Hello {} with 400 and go-micro error JSON, in the body and in Micro-Error', async (ctx) => {
    const res = await call(ctx, 'helloworld', '/helloworld/Greeter.Hello', post('{}'));
    assert.equal(await errorOf(res, 400), HELLO_400);
  });

  test('answers an unknown endpoint (Greeter.Bye) with 404 as error JSON', async (ctx) => {
    const res = await call(ctx, 'helloworld', '/helloworld/Greeter.Bye', post('{}'));
    const error = await errorOf(res, 404);
    assert.is(error.id, 'helloworld');
    assert.match(String(error.detail), 'Greeter.Bye');
  });

  test('answers a malformed JSON body with 400 as error JSON', async (ctx) => {
    const res = await call(ctx, 'helloworld', '/helloworld/Greeter.Hello', post('{"name":'));
    assert.is((await errorOf(res, 400)).id, 'helloworld');
  });

  test('serves a body of exactly 1 MiB, and answers one byte more with 413 as error JSON', async (ctx) => {
    const full = await call(ctx, 'helloworld', '/helloworld/Greeter.Hello', post(nameOfSize(MAX_BODY)));
    assert.is(full.status, 200, `a body of ${MAX_BODY} bytes is served`);
    const { message } = (await full.json()) as { message: string };
    assert.is(message.length, 'Hello '.length + MAX_BODY - '{"name":""}'.length);
    const over = await call(ctx, 'helloworld', '/helloworld/Greeter.Hello', post(nameOfSize(MAX_BODY + 1)));
    assert.is((await errorOf(over, 413)).id, 'helloworld', `a body of ${MAX_BODY + 1} bytes is refused`);
  });

  test('carries metadata both ways: a header reaches ctx.metadata, ctx.responseMetadata comes back', async (ctx) => {
    const headers = { 'micro-service': 'contract', 'micro-endpoint': 'Probe.Echo', 'micro-id': 'contract-call-1' };
    const res = await call(ctx, 'contract', '/', post('{}', { ...headers, 'x-contract-question': 'ready' }));
    assert.is(res.status, 200);
    const reply = (await res.json()) as { question: unknown };
    assert.is(reply.question, 'ready', 'the handler saw X-Contract-Question in ctx.metadata');
    assert.is(res.headers.get('x-contract-answer'), 'ready: yes', 'ctx.responseMetadata came back as a header');
    assert.is(res.headers.get('micro-id'), 'contract-call-1', 'Micro-Id comes back as it was sent');
  });

  const health = 'answers GET /health with 200 and runs no handler: the instance waiting serves the next request';
  test(health, async (ctx) => {
    const host = hostOf(ctx);
    await withTimeout(host.ready('contract'), 30_000, `${name}: contract ready`);
    const before = await host.output('contract');
    const loaded = loadedIn(before);
    const handled = countOf(before, /contract: instance \w+ handled/);
    assert.ok(loaded.size > 0, 'the contract function logged its instance at load');
    const probe = await call(ctx, 'contract', '/health');
    assert.is(probe.status, 200);
    assert.equal(await probe.json(), { status: 'ok' });
    const res = await call(ctx, 'contract', '/contract/Probe.Echo', post('{}'));
    assert.is(res.status, 200, 'the request after the probe is served');
    const { instance } = (await res.json()) as { instance: string };
    assert.ok(loaded.has(instance), `served by ${instance}, loaded before the probe (${[...loaded].join(', ')})`);
    // One ordered log: a handler run by the probe would show before the request's.
    const runs = async () => countOf(await host.output('contract'), /contract: instance \w+ handled/) - handled;
    await eventually(async () => (await runs()) >= 1, 10_000, `${name}: the handler's log line`);
    await sleep(GRACE_MS);
    assert.is(await runs(), 1, '1 handler run for 1 probe and 1 request: the probe ran none');
  });

  messageTest('handles events user.created {"id":1} exactly once: acked, 1 `user 1 created` log line', async (ctx) => {
    const host = hostOf(ctx);
    assert.equal(await deliver(ctx, 'user.created', { id: 1 }), { acked: true }, 'the platform acked it');
    const lines = async () => countOf(await host.output('events'), /user 1 created/);
    await eventually(async () => (await lines()) >= 1, 10_000, `${name}: the log line "user 1 created"`);
    await sleep(GRACE_MS);
    assert.is(await lines(), 1, '1 "user 1 created" log line for 1 message');
  });

  messageTest('does not ack user.created {"id":"x"}, which events fails with 400: the host retries it', async (ctx) => {
    const { attempts } = messagesOf(ctx);
    const settled = await deliver(ctx, 'user.created', { id: 'x' });
    assert.equal(settled, { acked: false, attempts }, `not acked, after ${attempts} attempt(s) by the host`);
  });

  if (options.streams) streamTests(test, { name, hostOf, call, ...(options.streams === true ? {} : options.streams) });
  return test;
}
