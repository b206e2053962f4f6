/**
 * ctx.config end to end: a real `micro-fn serve`, examples/config deployed with the CLI (its config.json bundled in,
 * its one-shot processes reading serve's local store with the token serve gave them), `micro-fn config` changing
 * the keys while an invocation runs: the invocation keeps its snapshot, its watcher sees the change.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cli, lastJson, refusesInOneLine, start, tempHome, type Running } from './helpers.js';
import { withTimeout } from '../helpers.js';

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

const hello = async () => {
  const res = await fetch(`${gateway}/config/Settings.Hello`, {
    method: 'POST',
    body: '{"name":"Ada"}',
    headers: { 'content-type': 'application/json' },
  });
  const body = (await res.json()) as { message: string };
  assert.is(res.status, 200, JSON.stringify(body));
  return body.message;
};

/** The messages of a server stream, one JSON value per line, as they come. */
async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const decoder = new TextDecoder();
  let text = '';
  const reader = body.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    text += decoder.decode(read.value, { stream: true });
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n')) {
      const line = text.slice(0, i).trim();
      text = text.slice(i + 1);
      if (line) yield JSON.parse(line) as Record<string, unknown>;
    }
  }
}

// ---
const served = suite('examples/config through micro-fn serve');

served.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(['serve', '--address', '127.0.0.1:0', '--quiet', '--timeout', '1m'], env);
  [, gateway] = (await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/)) as [string, string];
  await ok(['deploy', 'examples/config', '--env', 'shout=false', '--env', 'greeting=from env']);
});

served.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(10_000).catch(() => serve.kill());
  scratch.cleanup();
});

served('config.json overrides the environment, and micro-fn config set overrides both; delete falls back', async () => {
  assert.is(await hello(), 'Hello Ada', "config.json's greeting over the environment's");
  await ok(['config', 'set', 'config', 'greeting', 'Hi']);
  await ok(['config', 'set', 'config', 'shout', 'true']);
  assert.is(await hello(), 'HI ADA', 'the next invocation reads what was set');
  assert.is((await ok(['config', 'get', 'config', 'greeting'])).stdout, 'Hi\n');
  const listed = lastJson((await ok(['config', 'list', 'config', '--json'])).stdout) as { values: unknown };
  assert.equal(listed.values, { greeting: 'Hi', shout: 'true' });
  await ok(['config', 'delete', 'config', 'shout']);
  await ok(['config', 'delete', 'config', 'greeting']);
  assert.is(await hello(), 'Hello Ada', "back to config.json's greeting and the environment's shout=false");
  const gone = await cli(['config', 'get', 'config', 'greeting'], env);
  assert.is(gone.code, 1);
  assert.match(gone.stderr, /no key greeting in the configuration of config/);
});

served(
  'a running invocation keeps its snapshot while micro-fn config set changes a key; its watcher sees the change',
  async () => {
    const res = await fetch(`${gateway}/config/Settings.Follow`, {
      method: 'POST',
      body: '{"changes":1,"interval":100}',
      headers: { 'content-type': 'application/json' },
    });
    assert.is(res.status, 200);
    const messages = lines(res.body!);
    const first = await withTimeout(messages.next(), 30_000, 'the first message');
    assert.equal(first.value, { greeting: 'Hello' });
    await ok(['config', 'set', 'config', 'greeting', 'Bonjour']);
    const set = Date.now();
    const change = await withTimeout(messages.next(), 10_000, 'the change');
    const waited = Date.now() - set;
    assert.equal(
      change.value,
      { key: 'greeting', value: 'Bonjour', source: 'kv', greeting: 'Hello' },
      `seen ${waited} ms after micro-fn config set returned; the invocation's own greeting unchanged`,
    );
    assert.ok((await withTimeout(messages.next(), 10_000, 'the end')).done, 'the stream ends after 1 change');
    assert.is(await hello(), 'Bonjour Ada', 'the next invocation reads the change');
    await ok(['config', 'delete', 'config', 'greeting']);
  },
);

served(
  'a watching stream whose caller gives up ends long before its timeout (inflight 1 → 0 with no change)',
  async () => {
    const inflight = async () => {
      const stats = JSON.parse((await ok(['ps', '--json'])).stdout) as {
        functions: { name: string; pool?: { inflight: number } }[];
      };
      return stats.functions.find((f) => f.name === 'config')?.pool?.inflight ?? 0;
    };
    const caller = new AbortController();
    const res = await fetch(`${gateway}/config/Settings.Follow`, {
      method: 'POST',
      body: '{"changes":1,"interval":60000}',
      headers: { 'content-type': 'application/json' },
      signal: caller.signal,
    });
    const messages = lines(res.body!);
    await withTimeout(messages.next(), 30_000, 'the first message');
    assert.is(await inflight(), 1, 'the stream runs, watching');
    caller.abort();
    await messages.return(undefined).catch(() => {});
    // Its watch sleeps 60 s between reads and the function's timeout is 1 min: only the caller's going can end it.
    const until = Date.now() + 15_000;
    while ((await inflight()) !== 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    assert.is(await inflight(), 0, 'the invocation ended when its caller went');
  },
);

served('two writers at once both land (10 concurrent micro-fn config set of 10 keys)', async () => {
  await Promise.all(Array.from({ length: 10 }, (_, i) => ok(['config', 'set', 'config', `k${i}`, `${i}`])));
  const listed = lastJson((await ok(['config', 'list', 'config', 'k', '--json'])).stdout) as {
    values: Record<string, string>;
  };
  assert.equal(listed.values, Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`k${i}`, `${i}`])));
});

served('micro-fn config refuses a bad action, key or value with one line (5 cases)', async () => {
  await refusesInOneLine(
    [
      [['config', 'fetch', 'config', 'k'], /unknown config action "fetch": use set, get, list or delete/],
      [['config', 'get', 'config'], /config get needs a key/],
      [['config', 'set', 'config', 'k'], /config set needs a value/],
      [['config', 'set', 'config', 'k', '{', '--type', 'json'], /the value is not JSON .*without --type json/],
      [['config', 'get', 'config', 'a\nb'], /control characters/],
    ],
    env,
  );
});

served.run();

// ---
const noServe = suite('ctx.config without micro-fn serve');

noServe('micro-fn config says serve keeps the local config; invoke reads the environment and config.json', async () => {
  const home = tempHome();
  try {
    const r = await cli(['config', 'set', 'config', 'greeting', 'Hi'], { MICRO_FN_HOME: home.home });
    assert.is(r.code, 1);
    assert.match(r.stderr, /the local config \(micro-fn config set\) is kept by `micro-fn serve`, and none is running/);
    const invoked = await cli(['invoke', 'examples/config', 'Settings.Hello', '{"name":"Ada"}'], {
      MICRO_FN_HOME: home.home,
      shout: 'yes',
    });
    assert.is(invoked.code, 0, invoked.stderr);
    assert.equal(lastJson(invoked.stdout), { message: 'HELLO ADA' });
    assert.match(invoked.stderr, /reading the environment and config\.json only/);
  } finally {
    home.cleanup();
  }
});

noServe.run();
