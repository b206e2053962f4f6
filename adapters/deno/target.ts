/** The Deno target, declared once: its build, its deploy and their options. Build-time only. */
import { join, resolve } from 'node:path';
import { UserError } from '../../runtime/core/errors.js';
import { microFnHome } from '../../runtime/plugins/local/home.js';
import { loadDefinition } from '../kit/definition.js';
import { whole } from '../kit/options.js';
import { registerDeployment } from '../kit/register.js';
import { defineTarget } from '../kit/target.js';

export const target = defineTarget({
  name: 'deno',
  summary: 'Deno: a module whose default export `deno serve` runs, each request one invocation',
  platform: 'web',
  description: [
    'Bundles it as one ES module for `deno serve` and writes a deno.json whose `start` task serves it with the',
    "permissions it needs (--allow-env='MICRO_*' and its --env names; --allow-net when it has a registry or broker,",
    'else --allow-net HOSTS), and its --env as .env. micro-fn uploads nothing to Deno: --dry-run writes the folder,',
    'to run with `deno task start` there or to upload with Deno Deploy (set its --env there); --url URL writes it',
    'and registers URL, where it runs, for `micro-fn call`. NATS must be a ws:// or wss:// address. Deno has no',
    "queue that triggers it: a function's subscribers do not run on Deno.",
  ],
  options: {
    url: { type: 'string', value: 'URL', description: 'where Deno serves it: written, then registered at URL' },
    outdir: { type: 'string', short: 'o', value: 'DIR', description: 'the folder to write (default in MICRO_FN_HOME)' },
    'allow-net': { type: 'string', value: 'HOSTS', description: 'hosts its handlers fetch, for --allow-net' },
    host: { type: 'string', value: 'HOST', description: 'the address `deno task start` listens on (default 0.0.0.0)' },
    port: { type: 'string', value: 'PORT', description: 'the port `deno task start` listens on (default 8000)' },
    'dry-run': { type: 'boolean', description: 'write the folder for Deno, register nothing' },
  },
  examples: [
    'micro-fn deploy examples/helloworld --target deno --dry-run --outdir deno/ && (cd deno && deno task start)',
    'micro-fn deploy examples/helloworld --target deno --url https://hello.example.com --env MICRO_REGISTRY=nats ' +
      '--env MICRO_REGISTRY_ADDRESS=wss://nats.example.com',
  ],
  async build({ entry, outdir, minify, env }) {
    const { buildDeno } = await import('./build.js');
    return buildDeno(entry, { outdir, minify, env });
  },
  async deploy({ entry, env, hostEnv, options, session, progress }) {
    const { url, host } = options;
    const dryRun = options['dry-run'] === true;
    if (!dryRun && url === undefined) {
      throw new UserError(
        '--target deno uploads nothing: write the folder with --dry-run, serve it with `deno task start` there ' +
          '(or upload it with Deno Deploy), then deploy with --url URL to register where it runs',
      );
    }
    if (url !== undefined && !/^https?:\/\/[^/]/.test(url)) {
      throw new UserError(`--url takes the http:// or https:// address where Deno serves it; got "${url}"`);
    }
    const port = whole(options.port, 'port', 0);
    if (port !== undefined && port > 65535) throw new UserError(`--port takes 0 to 65535; got ${port}`);
    const { deployDeno, denoRecord } = await import('./deploy.js');
    const definition = await loadDefinition(entry, hostEnv);
    const { name } = definition;
    const outdir = resolve(options.outdir ?? join(microFnHome(hostEnv), 'builds', 'deno', name));
    const started = Date.now();
    const allowNet = options['allow-net']?.split(',');
    const result = await deployDeno({ entry, name, outdir, vars: env, allowNet, host, port, onProgress: progress });
    const topics = Object.keys(definition.subscribers ?? {});
    if (topics.length > 0) progress(`Deno has no queue to trigger it: topics ${topics.join(', ')} do not run there`);
    if (!dryRun && url !== undefined) await registerDeployment((await session()).registry, denoRecord(definition, url));
    const where = dryRun ? `wrote ${name} for Deno to ${outdir}` : `deployed ${name} for Deno at ${url}`;
    return {
      name,
      address: dryRun ? undefined : url,
      summary: `${where} in ${Date.now() - started} ms`,
      details: { name, address: dryRun ? '' : url, dryRun, files: result.files, bundle: result.build.file },
    };
  },
  removeOptions: {},
  async remove({ name, session, progress }) {
    // micro-fn uploaded nothing to Deno: what it registered is all it can take away.
    const { registry } = await session();
    const id = `${name}-deno`;
    const deregistered: string[] = [];
    for (const record of await registry.getService(name)) {
      const nodes = record.nodes.filter((n) => n.id === id);
      if (nodes.length === 0) continue;
      await registry.deregister({ ...record, nodes });
      deregistered.push(...nodes.map((n) => n.address));
    }
    if (deregistered.length === 0) throw new UserError(`no Deno function ${name} is registered`);
    progress(`deregistered ${name} (${deregistered.join(', ')})`);
    return {
      summary: `removed ${name} from the registry; stop \`deno task start\` where it runs, or delete its Deno Deploy project: micro-fn uploaded nothing to Deno`,
      details: { name, deregistered },
    };
  },
});
