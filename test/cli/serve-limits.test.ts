/**
 * serve's inputs and bounds, attacked through the real CLI and raw HTTP against a real `micro-fn serve`: names and
 * numbers refused with reasons, bundle paths kept inside serve's folder, deploys that fail saying why (and in
 * bounded time), file-system failures that do not crash serve, the hosted broker's byte bound, and the gateway's
 * connection cap and timeouts.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, controlHeaders, lastJson, start, tempHome, type Running } from './helpers.js';
import { eventually, withTimeout } from '../helpers.js';

/** The topic test/fixtures/long-topic subscribes to: 255 characters, the longest serve takes. */
const LONG_TOPIC = `long.${'t'.repeat(250)}`;

let scratch: ReturnType<typeof tempHome>;
let env: Record<string, string>;
let serve: Running;
let gateway: string;
const dirs: string[] = [];

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

/** A failed command's error JSON (`--json`). */
const refusal = async (args: string[]) => {
  const r = await cli([...args, '--json'], env, { timeout: 60_000 });
  assert.is(r.code, 1, `micro-fn ${args.join(' ')} should fail: ${r.stdout} ${r.stderr}`);
  assert.not.match(r.stderr, /\n\s+at /, 'one line, no stack');
  return lastJson(r.stderr) as { code: number; detail: string };
};

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  withTimeout(
    fetch(`${gateway}${path}`, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
    }),
    30_000,
    `POST ${path}`,
  );
const control = (endpoint: string, body: unknown) => post(`/micro-fn/${endpoint}`, body, controlHeaders(scratch.home));

/** A folder any function process can write to (it may run as another user). */
function scratchDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-limits-'));
  chmodSync(dir, 0o777);
  dirs.push(dir);
  return dir;
}

/** Builds `entry` into serve's bundle folder, as `micro-fn deploy` does, and returns the bundle's path. */
async function build(entry: string, folder: string): Promise<string> {
  const outdir = join(scratch.home, 'functions', folder);
  await ok(['build', entry, '--outdir', outdir]);
  return join(outdir, 'index.mjs');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const status = (pid: number, field: string): number =>
  Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

// ---
const limits = suite('micro-fn serve: inputs and failures');

limits.before(async () => {
  scratch = tempHome();
  env = { MICRO_FN_HOME: scratch.home };
  serve = start(
    ['serve', '--address', '127.0.0.1:0', '--quiet', '--ready-timeout', '3s', '--broker-limit', '64MiB'],
    env,
  );
  const [, address] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  gateway = address!;
  await ok(['deploy', 'examples/helloworld']);
});

limits.after(async () => {
  serve.child.kill('SIGTERM');
  await serve.exited(15_000).catch(() => serve.kill());
  scratch.cleanup();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const stillServing = async () => {
  const res = await post('/helloworld/Greeter.Hello', { name: 'Ada' });
  assert.is(res.status, 200, 'serve still answers');
  assert.is(serve.child.exitCode, null, `serve is running: ${serve.stderr()}`);
};

limits(
  'refuses a function with a 300-character name: 400 at the CLI and at a raw Runtime.Deploy (2 of 2)',
  async () => {
    const fromCli = await refusal(['deploy', 'test/fixtures/long-name']);
    assert.is(fromCli.code, 400);
    assert.match(fromCli.detail, /the function name "n{40}…" is 300 characters long; the most is 64/);
    const bundle = await build('test/fixtures/long-name', 'long-name');
    const raw = await control('Runtime.Deploy', { bundle });
    assert.is(raw.status, 400);
    const error = (await raw.json()) as { code: number; detail: string };
    assert.is(error.code, 400);
    assert.match(error.detail, /is 300 characters long; the most is 64/);
    assert.not.ok(existsSync(join(scratch.home, 'functions', 'long-name')), 'the refused build folder is removed');
    assert.not.ok(
      readdirSync(join(scratch.home, 'logs')).some((f) => f.startsWith('nnnn')),
      'no log file for it',
    );
    await stillServing();
  },
);

limits('refuses names the CLI is given before calling serve: remove, publish, dlq, call (4 of 4)', async () => {
  const long = 'x'.repeat(300);
  assert.match((await refusal(['remove', long])).detail, /the function name "x{40}…" is 300 characters long/);
  assert.match(
    (await refusal(['publish', long, '{}'])).detail,
    /the topic "x{40}…" is 300 characters long; the most is 255/,
  );
  assert.match((await refusal(['dlq', 'orders.*'])).detail, /the topic "orders\.\*" is not valid/);
  assert.match((await refusal(['call', long, 'A.B'])).detail, /the function name "x{40}…" is 300 characters long/);
});

limits(
  'refuses concurrency 0, timeout -1, memory 0 and a string for a number: 4 of 4 400s naming the field and range',
  async () => {
    const bundle = await build('examples/helloworld', 'numbers');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ concurrency: 0 }, /^concurrency must be a whole number from 1 to 1000 \(invocations\); got 0$/],
      [{ timeout: -1 }, /^timeout must be a whole number from 1 to 900000 \(milliseconds\); got -1$/],
      [{ memory: 0 }, /^memory must be a whole number from 16 to 10240 \(MiB\); got 0$/],
      [{ pool: '2' }, /^pool must be a whole number from 0 to 100 \(warm processes\); got "2", a string$/],
    ];
    for (const [numbers, detail] of cases) {
      const res = await control('Runtime.Deploy', { bundle, ...numbers });
      assert.is(res.status, 400, JSON.stringify(numbers));
      assert.match(((await res.json()) as { detail: string }).detail, detail);
    }
    assert.match(
      (await refusal(['deploy', 'examples/helloworld', '--concurrency', '0'])).detail,
      /--concurrency takes a whole number of at least 1; got "0"/,
    );
    assert.match(
      (await refusal(['deploy', 'examples/helloworld', '--pool', '500'])).detail,
      /--pool must be a whole number from 0 to 100 \(warm processes\); got 500/,
    );
    await stillServing();
  },
);

limits('refuses the bundle path <home>/functions/../index.mjs with a 400; MICRO_FN_HOME stays whole', async () => {
  const bundle = await build('examples/helloworld', 'escape');
  copyFileSync(bundle, join(scratch.home, 'index.mjs'));
  const res = await control('Runtime.Deploy', { bundle: `${join(scratch.home, 'functions')}/../index.mjs` });
  assert.is(res.status, 400);
  assert.match(
    ((await res.json()) as { detail: string }).detail,
    /the bundle must be .*functions\/<build>\/index\.mjs/,
  );
  // What remove deletes is the removed version's own build folder, and nothing else.
  await ok(['deploy', 'examples/helloworld']);
  await ok(['remove', 'helloworld']);
  for (const kept of ['index.mjs', 'registry', 'logs', join('functions', 'escape', 'index.mjs')])
    assert.ok(existsSync(join(scratch.home, kept)), `${kept} is still there`);
  await ok(['deploy', 'examples/helloworld']);
});

limits(
  'fails the deploy of a bundle that never says it is ready within --ready-timeout 3s: 504, its process gone',
  async () => {
    const pidFile = join(scratchDir(), 'pid');
    const started = Date.now();
    const error = await refusal(['deploy', 'test/fixtures/never-ready', '--env', `PID_FILE=${pidFile}`]);
    const took = Date.now() - started;
    assert.is(error.code, 504);
    assert.match(
      error.detail,
      /did not say it was ready within 3000 ms \(serve --ready-timeout\); its process was stopped/,
    );
    assert.ok(took < 15_000, `failed after ${took} ms (build included)`);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await eventually(() => !alive(pid), 3000, `process ${pid} is gone`);
    await stillServing();
  },
);

limits('answers a bundle that throws as it loads with a 400 carrying its error message', async () => {
  const error = await refusal(['deploy', 'test/fixtures/load-error']);
  assert.is(error.code, 400);
  assert.match(error.detail, /failed to load: Error: load-error fixture: the database URL is missing \(on purpose\)/);
});

limits(
  'keeps serving when logs/ is removed under a function: 20 of 20 calls answered, its log made again',
  async () => {
    await ok(['deploy', 'test/fixtures/noisy']);
    rmSync(join(scratch.home, 'logs'), { recursive: true, force: true });
    let answered = 0;
    for (let i = 0; i < 20; i++) if ((await post('/noisy/Noisy.Talk', {})).status === 200) answered++;
    assert.is(answered, 20, `${answered} of 20 calls answered`);
    await eventually(
      () =>
        existsSync(join(scratch.home, 'logs', 'noisy.log')) &&
        /chatter on stdout/.test(readFileSync(join(scratch.home, 'logs', 'noisy.log'), 'utf8')),
      5000,
      'the log written again',
    );
    await stillServing();
  },
);

limits(
  'stores the dead letter of a 255-character topic: 5 attempts, 1 dead letter listed by micro-fn dlq',
  async () => {
    assert.is(LONG_TOPIC.length, 255);
    await ok(['deploy', 'test/fixtures/long-topic']);
    const dir = scratchDir();
    await ok(['publish', LONG_TOPIC, JSON.stringify({ dir })]);
    let letters: { body: string }[] = [];
    await eventually(
      async () => {
        letters = JSON.parse((await ok(['dlq', LONG_TOPIC, '--json'])).stdout) as { body: string }[];
        return letters.length > 0;
      },
      20_000,
      'the dead letter',
    );
    assert.is(letters.length, 1);
    assert.equal(JSON.parse(letters[0]!.body), { dir });
    assert.equal(readFileSync(join(dir, 'attempts'), 'utf8').trim().split('\n'), ['1', '2', '3', '4', '5']);
    await ok(['remove', 'longtopic']);
  },
);

limits(
  'bounds what waits in the hosted broker: publishes past --broker-limit 64MiB get a retryable 503 (20 of 20), serve does not grow',
  async () => {
    await ok(['deploy', 'test/fixtures/holder', '--concurrency', '1', '--timeout', '60s']);
    const dir = scratchDir();
    const publish = (topic: string, payload: unknown) => post('/micro-fn/Broker.Publish', { topic, payload });
    // One message holds the only slot until released; the rest wait, taken from the broker but not settled.
    assert.is((await publish('hold.wait', { dir })).status, 200);
    const payload = { pad: 'x'.repeat(900_000) };
    let accepted = 0;
    let first: { code: number; detail: string } | undefined;
    try {
      for (let i = 0; i < 200 && !first; i++) {
        const res = await publish('hold.pad', payload);
        if (res.status === 200) accepted++;
        else first = (await res.json()) as { code: number; detail: string };
      }
      assert.ok(first, 'a publish was refused');
      assert.is(first!.code, 503);
      assert.match(first!.detail, /publish again once subscribers catch up/);
      // Each counts its body, topic and headers plus 64 bytes; the small messages kept already (hold.wait, a dead
      // letter of an earlier test) take less than 64 KiB of the bound.
      const size = JSON.stringify(payload).length;
      const counted = size + 'hold.pad'.length + 'content-type'.length + 'application/json'.length + 4 + 64;
      assert.ok(
        accepted >= Math.floor((64 * 1024 * 1024 - 65_536) / counted) &&
          accepted <= Math.floor((64 * 1024 * 1024) / counted),
        `${accepted} messages of ${size} bytes accepted`,
      );
      const rss = status(serve.child.pid!, 'VmRSS');
      let refused = 0;
      for (let i = 0; i < 20; i++) if ((await publish('hold.pad', payload)).status === 503) refused++;
      assert.is(refused, 20);
      const grew = (status(serve.child.pid!, 'VmRSS') - rss) / 1024;
      assert.ok(grew < 32, `serve grew ${grew.toFixed(1)} MiB over 20 refused publishes`);
    } finally {
      writeFileSync(join(dir, 'release'), '');
    }
    // The slot frees, the waiting messages are handled, and publishing works again.
    await eventually(async () => (await publish('hold.pad', payload)).status === 200, 60_000, 'room again', 200);
    await ok(['remove', 'holder']);
  },
);

limits.run();

// ---
const gatewaySuite = suite('micro-fn serve: the gateway holds its connections');
let small: Running;
let smallGateway: string;
let smallHome: ReturnType<typeof tempHome>;

gatewaySuite.before(async () => {
  smallHome = tempHome();
  small = start(['serve', '--address', '127.0.0.1:0', '--quiet', '--max-connections', '50'], {
    MICRO_FN_HOME: smallHome.home,
  });
  const [, address] = await small.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  smallGateway = address!;
});

gatewaySuite.after(async () => {
  small.child.kill('SIGTERM');
  await small.exited(15_000).catch(() => small.kill());
  smallHome.cleanup();
});

/** A socket to the gateway that says nothing; `closed()` tells whether serve closed it. */
function idle(): Promise<{ closed: () => boolean; destroy: () => void; data: () => string }> {
  const { port } = new URL(smallGateway);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let gone = false;
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (data += c));
    socket.on('close', () => (gone = true));
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ closed: () => gone, destroy: () => socket.destroy(), data: () => data }));
    socket.once('error', reject);
  });
}

const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

gatewaySuite('holds 300 idle connections to its cap of 50, and a normal call still gets through', async () => {
  const before = fds(small.child.pid!);
  const sockets: Awaited<ReturnType<typeof idle>>[] = [];
  for (let i = 0; i < 300; i++) sockets.push(await idle());
  // serve closes the oldest idle ones to make room; this side sees each close a moment later.
  const open = () => sockets.filter((s) => !s.closed()).length;
  await eventually(() => open() <= 50, 10_000, 'at most 50 of 300 idle connections open (cap 50)').catch(() => {});
  assert.ok(open() <= 50, `${open()} of 300 idle connections open (cap 50)`);
  const during = fds(small.child.pid!);
  assert.ok(during - before <= 55, `serve holds ${during - before} more file descriptors with 300 connections tried`);
  const res = await withTimeout(fetch(`${smallGateway}/health`), 5000, 'GET /health');
  assert.is(res.status, 200);
  for (const s of sockets) s.destroy();
});

gatewaySuite(
  "cuts a client that sends its headers slowly within 10 s (serve's headersTimeout): 408 error JSON",
  async () => {
    const { port } = new URL(smallGateway);
    const socket = connect(Number(port), '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => (data += c));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    const started = Date.now();
    const head = 'POST /helloworld/Greeter.Hello HTTP/1.1\r\nHost: x\r\nX-Slow: ';
    let i = 0;
    const drip = setInterval(() => socket.writable && socket.write(head[i++ % head.length]!), 500);
    try {
      await withTimeout(closed, 20_000, 'the slow client is cut');
    } finally {
      clearInterval(drip);
    }
    const took = Date.now() - started;
    assert.ok(took >= 9_000 && took < 12_500, `cut after ${took} ms`);
    assert.match(data, /^HTTP\/1\.1 408 /);
    assert.is((JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)) as { code: number }).code, 408);
  },
);

gatewaySuite('answers Expect: bogus with a 417 error JSON', async () => {
  const res = await withTimeout(
    fetch(`${smallGateway}/helloworld/Greeter.Hello`, { method: 'POST', body: '{}', headers: { expect: 'bogus' } }),
    5000,
    'POST with Expect: bogus',
  ).catch(() => undefined);
  // fetch may refuse to send an Expect header itself: then the raw request below is the check.
  if (res) assert.is(res.status, 417);
  const { port } = new URL(smallGateway);
  const text = await withTimeout(
    new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.write(
          'POST /helloworld/Greeter.Hello HTTP/1.1\r\nHost: x\r\nExpect: bogus\r\nContent-Length: 2\r\n\r\n{}',
        ),
      );
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (c: string) => (data += c));
      socket.on('close', () => resolve(data));
      socket.on('error', () => resolve(data));
    }),
    5000,
    'raw Expect: bogus',
  );
  assert.match(text, /^HTTP\/1\.1 417 Expectation Failed/);
  const error = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: number; status: string };
  assert.equal([error.code, error.status], [417, 'Expectation Failed']);
});

gatewaySuite.run();
