/**
 * Constants a function's build may define (esbuild `define`) so the bundle leaves out code the function can never
 * reach there. Unset everywhere else (plain Node, tests, the CLI), so unbundled code keeps every path. Each is read
 * as `globalThis.<name>` right where it guards, in a conditional expression: esbuild replaces it with `true` and drops
 * the dead branch, and with it every module only that branch used.
 */
declare global {
  /**
   * Set by builds for hosts where a function never listens nor subscribes: the platform hands it its invocations
   * (Lambda, Workers, Deno). The HTTP transport then carries no listener (node:http server, its exchanges, stream
   * writers), and a Service no listening, registering or subscribing.
   */
  var __MICRO_FN_NO_LISTENER__: true | undefined;
  /**
   * Set by builds of a function that neither serves a stream (no stream endpoint in its definition) nor calls one
   * (no `.stream(` in its own sources): the bundle then carries none of the stream machinery, on either side.
   */
  var __MICRO_FN_NO_STREAMS__: true | undefined;
  /** Set by builds of a function whose own sources never touch `ctx.store`: the bundle carries no store code. */
  var __MICRO_FN_NO_STORE__: true | undefined;
  /** Set by builds of a function whose own sources never touch `ctx.sync`: the bundle carries no lock code. */
  var __MICRO_FN_NO_SYNC__: true | undefined;
  /** Set by builds of a function whose own sources never touch `ctx.config`: the bundle carries no config code. */
  var __MICRO_FN_NO_CONFIG__: true | undefined;
  /**
   * Set by builds of a function whose sources never call out (no `client`, `publish` or `broker`, and neither store
   * nor sync): the bundle carries no client, no plugin resolution and no plugin but a trace exporter.
   */
  var __MICRO_FN_NO_CLIENT__: true | undefined;
  /** Set by builds of a function whose definition subscribes to no topic: the bundle carries no message path. */
  var __MICRO_FN_NO_SUBSCRIBERS__: true | undefined;
  /**
   * Set by builds whose configuration, known at build time, selects no trace exporter (no `OTEL_EXPORTER_OTLP_*`):
   * no exporter is bundled then, so no tracer there ever records. The bundle carries no code to look for an exporter
   * or to set one up, and its Dispatcher starts no span (a tracer handed to it by hand records nothing there).
   */
  var __MICRO_FN_NO_EXPORTER__: true | undefined;
  /**
   * Set by builds that loaded the function's definition: it passed the checks of its shape then (defineFunction's,
   * the module's default export, the router's and the service's), so the bundle carries neither the checks nor
   * their messages.
   */
  var __MICRO_FN_CHECKED__: true | undefined;
}

/** The names, as a build passes them to esbuild's `define`. */
export const BUILD_CONSTANTS = {
  noListener: 'globalThis.__MICRO_FN_NO_LISTENER__',
  noStreams: 'globalThis.__MICRO_FN_NO_STREAMS__',
  noStore: 'globalThis.__MICRO_FN_NO_STORE__',
  noSync: 'globalThis.__MICRO_FN_NO_SYNC__',
  noConfig: 'globalThis.__MICRO_FN_NO_CONFIG__',
  noClient: 'globalThis.__MICRO_FN_NO_CLIENT__',
  noSubscribers: 'globalThis.__MICRO_FN_NO_SUBSCRIBERS__',
  noExporter: 'globalThis.__MICRO_FN_NO_EXPORTER__',
  checked: 'globalThis.__MICRO_FN_CHECKED__',
} as const;

/** What a bundle built without something says when it is used anyway: one template, since each byte is in every bundle. */
const without = (what: string, because: string) =>
  `this bundle was built without ${what} (its ${because}): build it again`;

/** What a bundle built without `ctx.store`, `ctx.sync` or `ctx.config` says when it is used anyway. */
export function builtWithout(what: 'store' | 'sync' | 'config'): string {
  return without(`ctx.${what}`, `sources never use \`ctx.${what}\` or a destructured \`${what}\``);
}

/** What a bundle built without the client says when `ctx.client` is used anyway. */
export const NO_CLIENT = /* @__PURE__ */ without('the client', 'sources never use `client`, `publish` or `broker`');

/** What a bundle without the client passes an adapter's Runner for the plugins: nothing ever asks for them there. */
export const noPlugins = (): Promise<never> => Promise.reject(new Error(NO_CLIENT));

/** What a bundle built without streams says when one is asked of it anyway. */
export const NO_STREAMS = /* @__PURE__ */ without(
  'streams',
  'function had no stream endpoint and its sources no `.stream(` call',
);
