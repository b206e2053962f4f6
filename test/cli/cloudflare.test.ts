/**
 * `micro-fn deploy --target cloudflare` as a process: the upload goes to a local stand-in of Cloudflare's API
 * (that control plane is out of reach here), the uploaded modules run in real workerd (miniflare), and
 * `micro-fn call` reaches the Worker through the registry.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Miniflare } from 'miniflare';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { COMPATIBILITY_DATE } from '../../adapters/cloudflare/deploy.js';
import { cli, tempHome } from './helpers.js';
import { withTimeout } from '../helpers.js';

const cloudflare = suite('micro-fn deploy --target cloudflare');
let scratch: ReturnType<typeof tempHome>;
let api: Server;
let env: Record<string, string>;
const requests: { method: string; path: string; body: string }[] = [];
const workers: Miniflare[] = [];

const ok = async (args: string[]) => {
  const r = await cli(args, env, { timeout: 60_000 });
  assert.is(r.code, 0, `micro-fn ${args.join(' ')}: ${r.stderr}`);
  return r;
};

cloudflare.before(async () => {
  scratch = tempHome();
  // The stand-in answers as the API documents: success envelopes, the account's workers.dev subdomain, and a delete
  // with no body at all, or 404 with code 10007 for a Worker the account does not have.
  const uploaded = new Set<string>();
  api = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('latin1')));
    req.on('end', () => {
      requests.push({ method: req.method!, path: req.url!, body });
      const script = /\/workers\/scripts\/([^/?]+)(?:\?|$)/.exec(req.url!)?.[1];
      if (req.method === 'PUT' && script) uploaded.add(script);
      if (req.method === 'DELETE' && script) {
        if (uploaded.delete(script)) return void res.writeHead(200).end();
        const missing = { code: 10007, message: 'This Worker does not exist on your account.' };
        return void res
          .writeHead(404, { 'content-type': 'application/json' })
          .end(JSON.stringify({ success: false, errors: [missing], messages: [], result: null }));
      }
      const result = req.url!.endsWith('/workers/subdomain') ? { subdomain: 'my-team' } : {};
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ success: true, errors: [], messages: [], result }));
    });
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  env = {
    MICRO_FN_HOME: scratch.home,
    CLOUDFLARE_ACCOUNT_ID: 'acc123',
    CLOUDFLARE_API_TOKEN: 'token-abc',
    CLOUDFLARE_API_BASE_URL: `http://127.0.0.1:${(api.address() as AddressInfo).port}/client/v4`,
  };
});

cloudflare.after(async () => {
  await Promise.allSettled(workers.map((mf) => withTimeout(mf.dispose(), 10_000, 'disposing workerd')));
  api.closeAllConnections();
  await new Promise((resolve) => api.close(resolve));
  scratch.cleanup();
});

cloudflare(
  'uploads the Worker, registers its workers.dev address, and a call reaches it through the registry',
  async () => {
    const outdir = join(scratch.home, 'worker');
    const deployed = JSON.parse(
      (await ok(['deploy', 'examples/helloworld', '--target', 'cloudflare', '--outdir', outdir, '--json'])).stdout,
    ) as { address: string };
    assert.is(deployed.address, 'https://helloworld.my-team.workers.dev');
    const upload = requests.find((r) => r.method === 'PUT');
    assert.is(upload?.path, '/client/v4/accounts/acc123/workers/scripts/helloworld');
    assert.match(upload!.body, /"main_module":"index\.mjs"/);
    const [record] = JSON.parse((await ok(['describe', 'helloworld', '--json'])).stdout) as {
      nodes: { address: string }[];
    }[];
    assert.equal(
      record!.nodes.map((n) => n.address),
      ['https://helloworld.my-team.workers.dev'],
    );

    // The uploaded modules, run by workerd; registered under --url (a custom domain) in place of workers.dev.
    const modules = readdirSync(outdir, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.mjs'))
      .map((f) => ({ type: 'ESModule' as const, path: join(outdir, f) }));
    const mf = new Miniflare({
      modules,
      modulesRoot: outdir,
      compatibilityDate: COMPATIBILITY_DATE,
      host: '127.0.0.1',
      port: 0,
    });
    workers.push(mf);
    const url = (await withTimeout(mf.ready, 30_000, 'workerd')).origin;
    await ok(['deploy', 'examples/helloworld', '--target', 'cloudflare', '--outdir', outdir, '--url', url]);
    const [moved] = JSON.parse((await ok(['describe', 'helloworld', '--json'])).stdout) as {
      nodes: { address: string }[];
    }[];
    assert.equal(
      moved!.nodes.map((n) => n.address),
      [url],
      'a redeploy replaces the node',
    );
    assert.is(
      (await ok(['call', 'helloworld', 'Greeter.Hello', '{"name":"Ada"}'])).stdout,
      '{"message":"Hello Ada"}\n',
    );
  },
);

cloudflare('--dry-run writes the bundle, the upload metadata and a wrangler.toml, and registers nothing', async () => {
  const outdir = join(scratch.home, 'dry');
  const before = requests.length;
  const r = await ok([
    'deploy',
    'examples/events',
    '--target',
    'cloudflare',
    '--dry-run',
    '--outdir',
    outdir,
    '--timeout',
    '10s',
  ]);
  assert.match(r.stderr, /wrangler deploy/);
  const metadata = JSON.parse(readFileSync(join(outdir, 'metadata.json'), 'utf8')) as {
    bindings: { name: string; text?: string }[];
  };
  assert.equal(
    metadata.bindings.find((b) => b.name === 'MICRO_FN_TIMEOUT'),
    { type: 'plain_text', name: 'MICRO_FN_TIMEOUT', text: '10000' },
    '--timeout becomes the MICRO_FN_TIMEOUT binding',
  );
  assert.is(requests.length, before, 'nothing uploaded');
  for (const file of ['index.mjs', 'metadata.json', 'wrangler.toml']) assert.ok(existsSync(join(outdir, file)), file);
  const toml = readFileSync(join(outdir, 'wrangler.toml'), 'utf8');
  assert.match(toml, /name = "events"/);
  assert.match(toml, /queue = "user-created"/);
  const described = await cli(['describe', 'events'], env, { timeout: 30_000 });
  assert.is(described.code, 1, 'not registered');
});

cloudflare('refuses flags of other targets, and missing credentials, in one line', async () => {
  const pool = await cli(['deploy', 'examples/helloworld', '--target', 'cloudflare', '--pool', '2'], env, {
    timeout: 30_000,
  });
  assert.equal([pool.code, pool.stderr.trim().split('\n').length], [1, 1]);
  assert.match(pool.stderr, '--pool is not an option of --target cloudflare; it is for --target local');
  const bare = await cli(
    ['deploy', 'examples/helloworld', '--target', 'cloudflare'],
    { MICRO_FN_HOME: scratch.home },
    { timeout: 60_000 },
  );
  assert.is(bare.code, 1);
  assert.match(bare.stderr, /CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN/);
});

cloudflare('remove deletes the Worker (force) and deregisters it; a second remove says there is none', async () => {
  const removed = await ok(['remove', 'helloworld', '--target', 'cloudflare']);
  assert.match(removed.stderr, 'removed helloworld: deleted Worker helloworld, deregistered\n');
  const deletion = requests.filter((r) => r.method === 'DELETE');
  assert.equal(
    deletion.map((r) => r.path),
    ['/client/v4/accounts/acc123/workers/scripts/helloworld?force=true'],
  );
  assert.is((await cli(['describe', 'helloworld'], env, { timeout: 30_000 })).code, 1, 'deregistered');
  const again = await cli(['remove', 'helloworld', '--target', 'cloudflare'], env, { timeout: 30_000 });
  assert.is(again.code, 1);
  assert.match(
    again.stderr,
    'micro-fn: there is no Worker helloworld to remove and no registry entry of helloworld on Workers',
  );
  const bare = await cli(['remove', 'helloworld', '--target', 'cloudflare'], { MICRO_FN_HOME: scratch.home });
  assert.match(bare.stderr, 'set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN');
});

cloudflare.run();
