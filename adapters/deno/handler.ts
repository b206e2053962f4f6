/**
 * The Deno target's entry inside a function's bundle: the default export `deno serve` runs, whose `fetch` is one
 * mucp-over-HTTP invocation (the one fetch handler, runtime/plugins/http/fetch.ts). `deno serve` hands a module
 * HTTP requests only, so a function's subscribers do not run here. Imports only runtime/: it ships inside the
 * user's artifact.
 */
import { Runner, asDefinition, type Env } from '../../runtime/core/index.js';
import { noPlugins } from '../../runtime/core/build-constants.js';
import { createFetchHandler } from '../../runtime/plugins/http/fetch.js';
import { resolvePlugins, tracingOf } from '../../runtime/plugins/resolve.js';
import { denoNamespace, type Env as DenoEnv, type ServeDefaultExport } from './platform.js';

export interface ServeOptions {
  /** Largest request body in bytes; a larger one is answered 413. Default 1 MiB, as the HTTP listener's. */
  maxBodySize?: number;
  /** The function's configuration. Default: `Deno.env`, read one variable at a time (see `denoEnv`). */
  env?: Env;
}

/**
 * Makes the default export of a Deno module for a function module's default export (`from` names the module in
 * errors).
 *
 * - `fetch`: `POST /` with `Micro-Service`/`Micro-Endpoint` headers or `POST /<service>/<Service.Method>`, one
 *   fresh Function per request; errors as error JSON with their status and `Micro-Error`. `GET /health` is a
 *   probe. The Response goes back as soon as the reply exists; the Function stops after it.
 * - `env`: `Deno.env` is the function's configuration (`ctx.env`, `MICRO_*`). The plugins it selects (a NATS
 *   connection) are opened on the first call out and kept for the requests that follow: unlike a Worker, a Deno
 *   isolate may use one request's I/O in another.
 * @example
 * // what `micro-fn build <entry> --target deno` bundles as index.mjs; run: deno serve --allow-env='MICRO_*' index.mjs
 * import fn from './index.js';
 * import { createServe } from 'micro-fn/adapters/deno';
 * export default createServe(fn, 'index.ts');
 */
export function createServe(
  value: unknown,
  from = 'the function module',
  options: ServeOptions = {},
): ServeDefaultExport {
  const definition = asDefinition(value, from);
  const env = options.env ?? denoEnv();
  // A bundle whose function never calls out has no client to open them (build-constants.ts), nor their code.
  const plugins = globalThis.__MICRO_FN_NO_CLIENT__ ? noPlugins : () => resolvePlugins(env, { platform: 'web' });
  // Spans go out with fetch when the bundle was built for an OTLP endpoint (runtime/plugins/otel fetch-exporter.ts).
  const runner = new Runner(definition, { env, plugins, scope: 'host', tracing: tracingOf(env, 'web') });
  const handle = createFetchHandler(runner, { maxBodySize: options.maxBodySize });
  // Deno has no waitUntil, and needs none: the isolate keeps serving after a Response, so stopping the function
  // may finish after it. The runner never rejects; the catch only keeps a bug from becoming an unhandled rejection.
  const deno = denoNamespace();
  const context = {
    waitUntil: (promise: Promise<unknown>) => void promise.catch(() => {}),
    // A stream over WebSocket: the socket opens once the 101 Response went out.
    upgrade: globalThis.__MICRO_FN_NO_STREAMS__
      ? undefined
      : deno?.upgradeWebSocket && ((request: Request) => deno.upgradeWebSocket!(request)),
  };
  return { fetch: (request) => handle(request, context) };
}

/**
 * `Deno.env` as an Env whose variables are read when asked for, so `--allow-env='MICRO_*'` is all micro-fn needs.
 * A handler that reads another variable needs it allowed too (Deno's NotCapable error says so); listing them all
 * (`{ ...ctx.env }`) needs `--allow-env` without a list.
 */
export function denoEnv(env: DenoEnv | undefined = denoNamespace()?.env): Env {
  if (!env) throw new Error('createServe runs on Deno (deno serve); elsewhere, pass its configuration as options.env');
  const read = (key: string | symbol) => (typeof key === 'string' && /^[^=\0]+$/.test(key) ? env.get(key) : undefined);
  return new Proxy<Record<string, string | undefined>>(
    {},
    {
      get: (_, key) => read(key),
      has: (_, key) => read(key) !== undefined,
      ownKeys: () => Object.keys(env.toObject()),
      getOwnPropertyDescriptor: (_, key) => {
        const value = read(key);
        return value === undefined ? undefined : { value, enumerable: true, configurable: true, writable: false };
      },
    },
  );
}
