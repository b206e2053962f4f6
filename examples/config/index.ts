/**
 * config: a greeting read from ctx.config, whose layers are the function's environment, this folder's config.json
 * (bundled with it), and what `micro-fn config set` wrote, each overriding the one before.
 *
 *   npx micro-fn serve &
 *   npx micro-fn deploy examples/config
 *   npx micro-fn call config Settings.Hello '{"name":"Ada"}'   # {"message":"Hello Ada"}  (config.json)
 *   npx micro-fn config set config greeting Hi
 *   npx micro-fn config set config shout true
 *   npx micro-fn call config Settings.Hello '{"name":"Ada"}'   # {"message":"HI ADA"}
 *
 * - Settings.Hello: one read of the invocation's snapshot.
 * - Settings.Follow: a server stream that keeps running: its first message is the greeting it started with, then one
 *   message per change of a key (`changes` of them, default 1), each with the greeting of its own snapshot, which
 *   does not change while it runs.
 */
import { defineFunction, errors, type Context } from 'micro-fn';

class Settings {
  async Hello(req: { name?: unknown }, ctx: Context) {
    const name = typeof req?.name === 'string' ? req.name : 'World';
    const message = `${await ctx.config.string('greeting', 'Hello')} ${name}`;
    return { message: (await ctx.config.bool('shout', false)) ? message.toUpperCase() : message };
  }

  async *Follow(req: { changes?: unknown; interval?: unknown }, ctx: Context) {
    const changes = req?.changes ?? 1;
    const interval = req?.interval ?? 200;
    if (!Number.isInteger(changes) || (changes as number) < 1)
      throw errors.badRequest(ctx.service, 'changes must be a whole number above 0');
    if (!Number.isInteger(interval)) throw errors.badRequest(ctx.service, 'interval must be a whole number of ms');
    const greeting = await ctx.config.string('greeting', 'Hello');
    yield { greeting };
    let seen = 0;
    for await (const change of ctx.config.watch('', { interval: interval as number })) {
      yield {
        key: change.key,
        value: change.value,
        source: change.source,
        greeting: await ctx.config.string('greeting'),
      };
      if (++seen === changes) return;
    }
  }
}

export default defineFunction({
  name: 'config',
  handlers: { Settings: new Settings() },
});
