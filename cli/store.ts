import { UserError } from '../runtime/core/errors.js';
import { createStore, type Store } from '../runtime/core/store.js';
import { argumentText, defineCommand, duration, pluginOptions, storeOption } from './command.js';
import { write } from './output.js';
import { withSession } from './plugins.js';

const ACTIONS = ['get', 'set', 'list', 'delete'] as const;
type Action = (typeof ACTIONS)[number];

const USAGE = 'micro-fn store get|set|list|delete <function> <key> [json]';

export const command = defineCommand({
  name: 'store',
  summary: "read and write a function's store (ctx.store): get, set, list, delete",
  usage: 'get|set|list|delete <function> [key] [json]',
  description:
    'The store a function\'s handlers see as ctx.store, in its namespace (<function>, its name; a shared namespace by its name). The configuration chooses the store as it does for functions (MICRO_STORE, --store; default local: the one micro-fn serve keeps under MICRO_FN_HOME, which must be running). get prints the value as JSON; set takes JSON ("-" reads stdin); list prints one key per line with its revision and value, a page at a time.',
  options: {
    ttl: { type: 'string', value: 'DURATION', description: 'set: the key expires after it, e.g. 30s, 5m, 24h' },
    revision: {
      type: 'string',
      value: 'N',
      description: 'set, delete: only if the key is at revision N (set --revision 0: only if absent)',
    },
    limit: { type: 'string', value: 'N', description: 'list: keys per page (default 100, at most 1000)' },
    cursor: { type: 'string', value: 'KEY', description: 'list: the page after this key (what the last page printed)' },
    ...storeOption,
    ...pluginOptions,
  },
  examples: [
    'micro-fn store set counter count 41',
    'micro-fn store get counter count',
    `micro-fn store set sessions abc '{"user":1}' --ttl 30m`,
    'micro-fn store set counter count 42 --revision 7',
    'micro-fn store list counter --limit 10',
    'micro-fn store delete counter count',
  ],
  async run({ positionals, values }) {
    const [action, namespace, key, data, extra] = positionals;
    if (!action) throw new UserError(`store needs an action: ${USAGE}`);
    if (!ACTIONS.includes(action as Action))
      throw new UserError(`unknown store action "${action}": use get, set, list or delete (${USAGE})`);
    if (!namespace) throw new UserError(`store ${action} needs a function (its namespace): ${USAGE}`);
    const needsKey = action !== 'list';
    if (needsKey && key === undefined) throw new UserError(`store ${action} needs a key: ${USAGE}`);
    if (action === 'set' && data === undefined)
      throw new UserError(`store set needs a JSON value (quote it: '{"a":1}'; "-" reads stdin): ${USAGE}`);
    const surplus = action === 'set' ? extra : data;
    if (surplus !== undefined) throw new UserError(`unexpected argument "${surplus}": ${USAGE}`);
    const ttl = duration(values.ttl, 'ttl');
    const revision = whole(values.revision, 'revision');
    const limit = whole(values.limit, 'limit');
    const value = action === 'set' ? parseValue(argumentText(data)) : undefined;

    return withSession(values, async ({ plugins }) => {
      const open = plugins.store;
      if (!open) throw new UserError('no store is configured: set MICRO_STORE or --store');
      const store = createStore(open, namespace);
      return act(store, action as Action, key, value, { ttl, revision, limit, cursor: values.cursor }, !!values.json);
    });
  },
});

async function act(
  store: Store,
  action: Action,
  key: string | undefined,
  value: unknown,
  o: { ttl?: number; revision?: number; limit?: number; cursor?: string },
  json: boolean,
): Promise<number> {
  switch (action) {
    case 'get': {
      const entry = await store.get(key!);
      if (!entry) {
        if (json) await write(process.stdout, 'null\n');
        process.stderr.write(`no key ${key} in ${store.name}\n`);
        return 1;
      }
      const text = json ? JSON.stringify({ key, ...entry }) : JSON.stringify(entry.value);
      await write(process.stdout, `${text}\n`);
      if (!json) process.stderr.write(`revision ${entry.revision}\n`);
      return 0;
    }
    case 'set': {
      const revision = await store.set(key!, value, { ttl: o.ttl, revision: o.revision });
      if (json) await write(process.stdout, `${JSON.stringify({ key, revision })}\n`);
      else process.stderr.write(`set ${store.name}/${key} at revision ${revision}\n`);
      return 0;
    }
    case 'delete': {
      const deleted = await store.delete(key!, { revision: o.revision });
      if (json) await write(process.stdout, `${JSON.stringify({ key, deleted })}\n`);
      else process.stderr.write(deleted ? `deleted ${store.name}/${key}\n` : `no key ${key} in ${store.name}\n`);
      return 0;
    }
    case 'list': {
      const page = await store.list(key ?? '', { limit: o.limit, cursor: o.cursor });
      if (json) await write(process.stdout, `${JSON.stringify(page)}\n`);
      else {
        const lines = page.entries.map((e) => `${e.key}\t${e.revision}\t${JSON.stringify(e.value)}`);
        await write(process.stdout, lines.length ? `${lines.join('\n')}\n` : '');
        const more = page.cursor === undefined ? '' : `; more: --cursor ${JSON.stringify(page.cursor)}`;
        process.stderr.write(`${page.entries.length} key${page.entries.length === 1 ? '' : 's'}${more}\n`);
      }
      return 0;
    }
  }
}

function whole(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UserError(`--${flag} takes a whole number; got "${value}"`);
  return Number(value);
}

/** The value of `set`: JSON; a bare word is refused with how to quote it. */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`the value is not JSON (${(err as Error).message}); a string needs its quotes: '"text"'`);
  }
}
