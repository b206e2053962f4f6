/** deployCloudflare against a local stand-in of the Cloudflare API, checked for the documented request shape. */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  COMPATIBILITY_DATE,
  deployCloudflare,
  workerName,
  type CloudflareDeployOptions,
} from '../../../adapters/cloudflare/deploy.js';
import { UserError } from '../../../runtime/core/errors.js';
import { rejects, withTimeout } from '../../helpers.js';
import { tempDir } from './worker.js';

const helloworld = fileURLToPath(new URL('../../../examples/helloworld/index.ts', import.meta.url));
const CREDENTIALS = { CLOUDFLARE_ACCOUNT_ID: 'acc123', CLOUDFLARE_API_TOKEN: 'token-abc' };

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

interface Context {
  server: Server;
  apiBase: string;
  received: Received[];
  /** The reply for a path; default: success. */
  reply: (r: Received) => { status: number; body: unknown };
  dir: string;
  remove: () => void;
  deploy(options?: Partial<CloudflareDeployOptions>): ReturnType<typeof deployCloudflare>;
}

const ok = (result: unknown) => ({ status: 200, body: { success: true, errors: [], messages: [], result } });
const defaultReply = (r: Received) => (r.path.endsWith('/workers/subdomain') ? ok({ subdomain: 'my-team' }) : ok({}));

// ---
const deploy = suite<Context>('deployCloudflare', {} as Context);

deploy.before(async (ctx) => {
  ctx.received = [];
  ctx.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method!, path: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
      ctx.received.push(r);
      const { status, body } = ctx.reply(r);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => ctx.server.listen(0, '127.0.0.1', resolve));
  ctx.apiBase = `http://127.0.0.1:${(ctx.server.address() as AddressInfo).port}/client/v4`;
});

deploy.after(async (ctx) => {
  ctx.server.closeAllConnections();
  await new Promise((resolve) => ctx.server.close(resolve));
});

deploy.before.each((ctx) => {
  Object.assign(ctx, tempDir());
  ctx.received = [];
  ctx.reply = defaultReply;
  ctx.deploy = (options = {}) =>
    withTimeout(
      deployCloudflare({
        entry: helloworld,
        name: 'helloworld',
        outdir: ctx.dir,
        env: CREDENTIALS,
        apiBase: ctx.apiBase,
        ...options,
      }),
      30_000,
      'the deploy',
    );
});

deploy.after.each((ctx) => ctx.remove());

deploy(
  'uploads the modules as the Workers script upload API documents it, enables workers.dev, returns the address',
  async (ctx) => {
    const lines: string[] = [];
    const result = await ctx.deploy({
      vars: { MICRO_REGISTRY: 'nats', MICRO_REGISTRY_ADDRESS: 'wss://nats.example.com' },
      onProgress: (line) => lines.push(line),
    });
    assert.is(result.address, 'https://helloworld.my-team.workers.dev');
    assert.equal(
      ctx.received.map((r) => `${r.method} ${r.path}`),
      [
        'PUT /client/v4/accounts/acc123/workers/scripts/helloworld',
        'POST /client/v4/accounts/acc123/workers/scripts/helloworld/subdomain',
        'GET /client/v4/accounts/acc123/workers/subdomain',
      ],
    );
    for (const r of ctx.received) assert.is(r.headers.authorization, 'Bearer token-abc');

    const [upload, subdomain] = ctx.received;
    assert.match(upload!.headers['content-type']!, /^multipart\/form-data; boundary=/);
    const form = await new Response(new Uint8Array(upload!.body), {
      headers: { 'content-type': upload!.headers['content-type']! },
    }).formData();
    const metadata = JSON.parse(await (form.get('metadata') as File).text());
    assert.equal(metadata, {
      main_module: 'index.mjs',
      compatibility_date: COMPATIBILITY_DATE,
      bindings: [
        { type: 'plain_text', name: 'MICRO_REGISTRY', text: 'nats' },
        { type: 'plain_text', name: 'MICRO_REGISTRY_ADDRESS', text: 'wss://nats.example.com' },
      ],
    });
    const modules = [...form.keys()].filter((k) => k !== 'metadata' && k !== 'index.mjs.map');
    assert.equal(modules, ['index.mjs', ...result.build.artifacts.map((a) => `chunks/${a.file.split('/').pop()}`)]);
    // The source map beside it, as wrangler uploads one; linked from the module, never inside it.
    const map = form.get('index.mjs.map') as File;
    assert.is(map?.type, 'application/source-map');
    assert.is(JSON.parse(await map.text()).version, 3);
    assert.not.match(readFileSync(join(ctx.dir, 'index.mjs'), 'utf8'), /sourceMappingURL=data:/);
    for (const name of modules) {
      const part = form.get(name) as File;
      assert.is(part.type, 'application/javascript+module', name);
      assert.is(part.name, name);
      assert.is(await part.text(), readFileSync(join(ctx.dir, name), 'utf8'), `${name} is the built module`);
    }
    assert.equal(JSON.parse(subdomain!.body.toString()), { enabled: true });
    assert.is(subdomain!.headers['content-type'], 'application/json');
    assert.ok(lines.some((l) => l.startsWith('uploaded Worker helloworld')));
    assert.ok(lines.includes('serving at https://helloworld.my-team.workers.dev'));
  },
);

deploy('returns --url as the address and leaves workers.dev alone', async (ctx) => {
  const result = await ctx.deploy({ url: 'https://hello.example.com' });
  assert.is(result.address, 'https://hello.example.com');
  assert.equal(
    ctx.received.map((r) => r.method),
    ['PUT'],
  );
});

deploy('says what Cloudflare refused, with a hint on credentials', async (ctx) => {
  ctx.reply = () => ({
    status: 403,
    body: { success: false, errors: [{ code: 10000, message: 'Authentication error' }], messages: [], result: null },
  });
  const err = (await rejects(() => ctx.deploy())) as Error;
  assert.instance(err, UserError);
  assert.match(
    err.message,
    'Cloudflare refused to upload the Worker helloworld: Authentication error (10000): check CLOUDFLARE_API_TOKEN',
  );
});

deploy('refuses to start without credentials, pointing at --dry-run', async (ctx) => {
  const err = (await rejects(() => ctx.deploy({ env: {} }))) as Error;
  assert.instance(err, UserError);
  assert.match(err.message, /CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN.*--dry-run/);
  assert.equal(ctx.received, []);
});

deploy('refuses a name that cannot be a Worker, suggesting one that can', async (ctx) => {
  const err = (await rejects(() => ctx.deploy({ name: 'go.micro.Greeter' }))) as Error;
  assert.match(err.message, /try "go-micro-greeter"/);
});

deploy('dry run: writes the bundle, the upload metadata and a wrangler.toml, and calls no API', async (ctx) => {
  const lines: string[] = [];
  const result = await ctx.deploy({
    env: {},
    dryRun: true,
    vars: { MICRO_BROKER: 'nats', MICRO_BROKER_ADDRESS: 'wss://nats.example.com', QUOTE: 'say "hi"' },
    queues: ['user-created'],
    onProgress: (l) => lines.push(l),
  });
  assert.equal(ctx.received, []);
  assert.is(result.address, '');
  assert.ok(existsSync(join(ctx.dir, 'index.mjs')));
  for (const a of result.build.artifacts) assert.ok(existsSync(a.file));
  assert.equal(result.files, [join(ctx.dir, 'metadata.json'), join(ctx.dir, 'wrangler.toml')]);
  assert.equal(JSON.parse(readFileSync(join(ctx.dir, 'metadata.json'), 'utf8')).main_module, 'index.mjs');
  const toml = readFileSync(join(ctx.dir, 'wrangler.toml'), 'utf8');
  for (const line of [
    'name = "helloworld"',
    'main = "index.mjs"',
    `compatibility_date = "${COMPATIBILITY_DATE}"`,
    'no_bundle = true',
    'find_additional_modules = true',
    'upload_source_maps = true',
    '[vars]',
    '"QUOTE" = "say \\"hi\\""',
    '[[queues.consumers]]',
    'queue = "user-created"',
  ]) {
    assert.ok(toml.split('\n').includes(line), `wrangler.toml has ${line}`);
  }
  assert.not.match(toml, /compatibility_flags|nodejs_compat/);
  assert.ok(lines.some((l) => l.includes('npx wrangler deploy')));
});

deploy(
  'binds the cloudflare-kv store: finds or creates the micro-fn-store namespace, or binds the one given',
  async (ctx) => {
    const namespaces: { id: string; title: string }[] = [{ id: 'other', title: 'someone-else' }];
    ctx.reply = (r) => {
      if (r.path.includes('/storage/kv/namespaces?')) return ok(namespaces);
      if (r.path.endsWith('/storage/kv/namespaces') && r.method === 'POST') {
        const made = { id: 'kv-new', title: JSON.parse(r.body.toString()).title };
        namespaces.push(made);
        return ok(made);
      }
      return defaultReply(r);
    };
    const kvBindings = async (r: Received) => {
      const form = await new Response(new Uint8Array(r.body), {
        headers: { 'content-type': r.headers['content-type']! },
      }).formData();
      const metadata = JSON.parse(await (form.get('metadata') as File).text()) as { bindings: { type: string }[] };
      return metadata.bindings.filter((b) => b.type === 'kv_namespace');
    };
    const vars = { MICRO_STORE: 'cloudflare-kv' };
    const calls = () => ctx.received.map((r) => `${r.method} ${r.path.replace('/client/v4/accounts/acc123', '')}`);

    // 1. none yet: created, then bound under the default binding
    const lines: string[] = [];
    await ctx.deploy({ vars, url: 'https://hello.example.com', onProgress: (l) => lines.push(l) });
    assert.equal(calls(), [
      'GET /storage/kv/namespaces?per_page=100&page=1',
      'POST /storage/kv/namespaces',
      'PUT /workers/scripts/helloworld',
    ]);
    assert.equal(JSON.parse(ctx.received[1]!.body.toString()), { title: 'micro-fn-store' });
    assert.equal(await kvBindings(ctx.received[2]!), [
      { type: 'kv_namespace', name: 'MICRO_FN_STORE', namespace_id: 'kv-new' },
    ]);
    assert.ok(lines.includes('created the Workers KV namespace micro-fn-store (kv-new)'), lines.join('\n'));

    // 2. the next deploy finds it (no second namespace), under the binding MICRO_STORE_ADDRESS names
    ctx.received = [];
    await ctx.deploy({ vars: { ...vars, MICRO_STORE_ADDRESS: 'COUNTS' }, url: 'https://hello.example.com' });
    assert.equal(calls(), ['GET /storage/kv/namespaces?per_page=100&page=1', 'PUT /workers/scripts/helloworld']);
    assert.equal(await kvBindings(ctx.received[1]!), [
      { type: 'kv_namespace', name: 'COUNTS', namespace_id: 'kv-new' },
    ]);
    assert.is(namespaces.length, 2, 'one namespace made in 2 deploys');

    // 3. one given by id: bound as is, nothing listed
    ctx.received = [];
    await ctx.deploy({ vars, kvNamespace: 'kv-mine', url: 'https://hello.example.com' });
    assert.equal(calls(), ['PUT /workers/scripts/helloworld']);
    assert.equal(await kvBindings(ctx.received[0]!), [
      { type: 'kv_namespace', name: 'MICRO_FN_STORE', namespace_id: 'kv-mine' },
    ]);

    // 4. another store: no KV namespace at all
    ctx.received = [];
    await ctx.deploy({ vars: { MICRO_STORE: 'memory' }, url: 'https://hello.example.com' });
    assert.equal(calls(), ['PUT /workers/scripts/helloworld']);
    assert.equal(await kvBindings(ctx.received[0]!), []);
  },
);

deploy('a token that may not use Workers KV is told which permission it lacks', async (ctx) => {
  ctx.reply = (r) =>
    r.path.includes('/storage/kv/')
      ? { status: 403, body: { success: false, errors: [{ code: 10000, message: 'Authentication error' }] } }
      : defaultReply(r);
  const err = (await rejects(() => ctx.deploy({ vars: { MICRO_STORE: 'cloudflare-kv' } }))) as Error;
  assert.instance(err, UserError);
  assert.match(err.message, 'Workers KV Storage: Edit');
  assert.equal(
    ctx.received.map((r) => r.method),
    ['GET'],
    'nothing uploaded',
  );
});

deploy(
  'dry run with the cloudflare-kv store: wrangler.toml binds the namespace, with its id when given',
  async (ctx) => {
    await ctx.deploy({ env: {}, dryRun: true, vars: { MICRO_STORE: 'cloudflare-kv' } });
    let toml = readFileSync(join(ctx.dir, 'wrangler.toml'), 'utf8').split('\n');
    assert.ok(toml.includes('[[kv_namespaces]]') && toml.includes('binding = "MICRO_FN_STORE"'), toml.join('\n'));
    assert.not.ok(
      toml.some((l) => l.startsWith('id = ')),
      'no id: wrangler provisions it',
    );
    await ctx.deploy({ env: {}, dryRun: true, vars: { MICRO_STORE: 'cloudflare-kv' }, kvNamespace: 'kv-mine' });
    toml = readFileSync(join(ctx.dir, 'wrangler.toml'), 'utf8').split('\n');
    assert.ok(toml.includes('id = "kv-mine"'));
    const metadata = JSON.parse(readFileSync(join(ctx.dir, 'metadata.json'), 'utf8'));
    assert.equal(metadata.bindings.at(-1), { type: 'kv_namespace', name: 'MICRO_FN_STORE', namespace_id: 'kv-mine' });
    assert.equal(ctx.received, []);
  },
);

deploy.run();

// ---
const names = suite('workerName');

names('makes a service name a Worker name', () => {
  assert.is(workerName('helloworld'), 'helloworld');
  assert.is(workerName('go.micro.srv_Greeter'), 'go-micro-srv-greeter');
});

names.run();
