import { UserError } from '../runtime/core/errors.js';
import { CONFIG_NAMESPACE, readKv, type ConfigBackend } from '../runtime/core/function-config.js';
import { checkKey, encodeValue, isConflict } from '../runtime/core/store.js';
import { argumentText, configOption, defineCommand, pluginOptions } from './command.js';
import { write } from './output.js';
import { withSession } from './plugins.js';

const ACTIONS = ['set', 'get', 'list', 'delete'] as const;
type Action = (typeof ACTIONS)[number];

const USAGE = 'micro-fn config set|get|list|delete <function> <key> [value]';
/** Rounds of read, change, compare-and-set before giving up (each lost one means another writer's change landed). */
const ROUNDS = 20;

export const command = defineCommand({
  name: 'config',
  summary: "set and read a function's configuration (ctx.config): set, get, list, delete",
  usage: 'set|get|list|delete <function> [key] [value]',
  description:
    "The keys a function reads as ctx.config, over its environment and its config.json (later layers win: environment, config.json, these). They are kept where the configuration says (MICRO_CONFIG, --config; default local: in the store micro-fn serve keeps under MICRO_FN_HOME, which must be running; nats: the JetStream KV bucket micro_fn_config on MICRO_CONFIG_ADDRESS, else the registry's NATS). A running invocation keeps the snapshot it read; the next one sees a change, and a handler that watches (ctx.config.watch) sees it within its interval. set stores the value as text (a typed read converts it: number('port'), bool('debug')), or as JSON with --type json; get and list show these keys only, not the environment's or config.json's.",
  options: {
    type: {
      type: 'string',
      value: 'string|json',
      description: 'set: keep the value as text (default) or parse it as JSON (a value of "-" is read from stdin)',
    },
    ...configOption,
    ...pluginOptions,
  },
  examples: [
    'micro-fn config set helloworld greeting Hi',
    `micro-fn config set helloworld limits '{"burst":10}' --type json`,
    'micro-fn config get helloworld greeting',
    'micro-fn config list helloworld',
    'micro-fn config delete helloworld greeting',
  ],
  async run({ positionals, values }) {
    const [action, service, key, data, extra] = positionals;
    if (!action) throw new UserError(`config needs an action: ${USAGE}`);
    if (!ACTIONS.includes(action as Action))
      throw new UserError(`unknown config action "${action}": use set, get, list or delete (${USAGE})`);
    if (!service) throw new UserError(`config ${action} needs a function: ${USAGE}`);
    checkKey(service, 'function name');
    if (action !== 'list' && key === undefined) throw new UserError(`config ${action} needs a key: ${USAGE}`);
    if (key !== undefined) checkKey(key, action === 'list' ? 'prefix' : 'config key');
    if (action === 'set' && data === undefined)
      throw new UserError(`config set needs a value (quote it if it has spaces; "-" reads stdin): ${USAGE}`);
    const surplus = action === 'set' ? extra : data;
    if (surplus !== undefined) throw new UserError(`unexpected argument "${surplus}": ${USAGE}`);
    const type = values.type ?? 'string';
    if (type !== 'string' && type !== 'json') throw new UserError(`--type is string or json; got "${type}"`);
    if (values.type !== undefined && action !== 'set') throw new UserError('--type goes with config set only');
    const value = action === 'set' ? parseValue(argumentText(data), type) : undefined;
    const json = !!values.json;

    return withSession(values, async ({ plugins }) => {
      const open = plugins.config;
      if (!open) throw new UserError('no config source is configured: set MICRO_CONFIG or --config');
      const backend = await open();
      switch (action as Action) {
        case 'get': {
          const { values: kv } = await readKv(backend, service);
          if (!Object.hasOwn(kv, key!)) {
            if (json) await write(process.stdout, 'null\n');
            process.stderr.write(`no key ${key} in the configuration of ${service} set with micro-fn config\n`);
            return 1;
          }
          const found = kv[key!];
          const text = json ? JSON.stringify({ key, value: found }) : shown(found);
          await write(process.stdout, `${text}\n`);
          return 0;
        }
        case 'list': {
          const { values: kv, revision } = await readKv(backend, service);
          const keys = Object.keys(kv)
            .filter((k) => k.startsWith(key ?? ''))
            .sort();
          if (json)
            await write(
              process.stdout,
              `${JSON.stringify({ revision, values: Object.fromEntries(keys.map((k) => [k, kv[k]])) })}\n`,
            );
          else {
            await write(process.stdout, keys.map((k) => `${k}\t${shown(kv[k])}\n`).join(''));
            process.stderr.write(`${keys.length} key${keys.length === 1 ? '' : 's'}\n`);
          }
          return 0;
        }
        case 'set': {
          const revision = await update(backend, service, (kv) => ({ ...kv, [key!]: value }));
          if (json) await write(process.stdout, `${JSON.stringify({ key, revision })}\n`);
          else process.stderr.write(`set ${key} of ${service}\n`);
          return 0;
        }
        case 'delete': {
          let deleted = false;
          await update(backend, service, (kv) => {
            deleted = Object.hasOwn(kv, key!);
            if (!deleted) return undefined;
            const { [key!]: _, ...rest } = kv;
            return rest;
          });
          if (json) await write(process.stdout, `${JSON.stringify({ key, deleted })}\n`);
          else
            process.stderr.write(
              deleted ? `deleted ${key} of ${service}\n` : `no key ${key} in the configuration of ${service}\n`,
            );
          return 0;
        }
      }
    });
  },
});

/**
 * Changes the function's keys by compare-and-set on the one entry that holds them, so two writers at once both land
 * (the loser reads again and applies its change to the winner's). `change` returning undefined changes nothing.
 */
async function update(
  backend: ConfigBackend,
  service: string,
  change: (kv: Record<string, unknown>) => Record<string, unknown> | undefined,
): Promise<number | undefined> {
  for (let round = 0; round < ROUNDS; round++) {
    const { values, revision } = await readKv(backend, service);
    const next = change(values);
    if (next === undefined) return revision;
    try {
      if (Object.keys(next).length === 0) {
        await backend.delete(CONFIG_NAMESPACE, service, { revision });
        return 0;
      }
      return await backend.set(CONFIG_NAMESPACE, service, encodeValue(next), { revision });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
  throw new UserError(`the configuration of ${service} kept changing under ${ROUNDS} tries: try again`);
}

/** The value of `set`: the text itself, or JSON with --type json. */
function parseValue(text: string, type: 'string' | 'json'): unknown {
  if (type === 'string') return text;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`the value is not JSON (${(err as Error).message}); without --type json it is kept as text`);
  }
}

/** A value as `get` and `list` print it: text as it is, anything else as JSON. */
function shown(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
