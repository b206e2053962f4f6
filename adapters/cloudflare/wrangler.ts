/**
 * Build-time only: a wrangler.toml for a built Worker, so `wrangler deploy` can upload what micro-fn built
 * (https://developers.cloudflare.com/workers/wrangler/configuration/).
 */

export interface WranglerConfig {
  name: string;
  main: string;
  compatibilityDate: string;
  vars: Record<string, string>;
  /** Queues whose messages the Worker consumes. */
  queues: string[];
  /** Workers KV namespaces to bind; one without an id is provisioned by wrangler (4.45 and later) on deploy. */
  kvNamespaces?: { binding: string; id?: string }[];
}

/**
 * The configuration as TOML. `no_bundle`: the folder is already bundled, chunks included, and
 * `find_additional_modules` uploads those chunks beside the main module; `upload_source_maps` its source map.
 */
export function wranglerToml(config: WranglerConfig): string {
  const lines = [
    '# Written by micro-fn deploy --dry-run: deploy with `npx wrangler deploy` in this folder.',
    `name = ${str(config.name)}`,
    `main = ${str(config.main)}`,
    `compatibility_date = ${str(config.compatibilityDate)}`,
    'workers_dev = true',
    'no_bundle = true',
    'find_additional_modules = true',
    'rules = [{ type = "ESModule", globs = ["**/*.mjs"] }]',
    // index.mjs.map, linked from index.mjs: uploaded so that Cloudflare maps stack traces to the sources.
    'upload_source_maps = true',
  ];
  const vars = Object.entries(config.vars);
  if (vars.length > 0) lines.push('', '[vars]', ...vars.map(([key, value]) => `${str(key)} = ${str(value)}`));
  for (const queue of config.queues) lines.push('', '[[queues.consumers]]', `queue = ${str(queue)}`);
  for (const kv of config.kvNamespaces ?? []) {
    lines.push('', '[[kv_namespaces]]', `binding = ${str(kv.binding)}`);
    if (kv.id) lines.push(`id = ${str(kv.id)}`);
    else
      lines.push(
        '# no id: wrangler 4.45 and later creates the namespace on deploy; or `npx wrangler kv namespace create`',
      );
  }
  return `${lines.join('\n')}\n`;
}

/** A TOML basic string: JSON's escapes are TOML's, for everything JSON.stringify emits. */
const str = (value: string) => JSON.stringify(value);
