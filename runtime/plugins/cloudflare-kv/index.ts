/** The cloudflare-kv plugin: a store (`ctx.store`) on a Workers KV namespace binding. */
export * from './store.js';
