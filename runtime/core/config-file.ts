/**
 * The JSON file shipped with a function (`config.json` in its entry's folder), as its build bundled it: a function's
 * bundle gets its own copy of this module holding the file's object (adapters/kit/config-file.ts generates it). Here,
 * unbundled (tests, plain Node), there is none. Read by `ctx.config` (function-config.ts) as its middle layer.
 */
export const configFile: unknown = undefined;
