/**
 * The Lambda target's entry inside a function's bundle: `handler(event, context)`, one translator per event
 * shape, picked by a type guard. Each invocation runs a fresh one-shot Function of the definition; the plugins its
 * handlers call out with are opened once per execution environment and kept for the warm invocations that follow.
 * Imports only runtime/: it ships inside the user's artifact.
 */
import { Runner, errors, type Env, type ErrorJSON, type ServiceDefinition } from '../../runtime/index.js';
import { tracingOf, resolvePlugins } from '../../runtime/plugins/resolve.js';
import { LAMBDA_GRACE } from './deadline.js';
import { handleDirect } from './direct.js';
import { isDirectEvent, isHttpEvent, isSqsEvent, type Context } from './events.js';
import { httpHandler } from './http.js';
import { createFetchHandler, type FetchHandler } from '../../runtime/plugins/http/fetch.js';
import { handleSqs } from './sqs.js';
import { noPlugins } from '../../runtime/core/build-constants.js';

/** An async Lambda handler (Node 24 drops callback handlers). */
export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

const EXPECTED =
  'expected a direct invocation {"endpoint":"Service.Method","body":{...},"metadata":{...}} (or "topic" instead of "endpoint"), a Function URL / API Gateway HTTP API (payload 2.0) request, or an SQS event';

/**
 * The handler for `definition`: direct invocations, Function URL / HTTP API requests and SQS batches. A function
 * with a server stream uses createStreamingHandler (stream.ts) instead, which `micro-fn build` picks for it. Each
 * invocation's deadline is `context.getRemainingTimeInMillis()` less a reserve (see deadline.ts), or the caller's
 * shorter `Micro-Timeout`: past it the reply is a 408 and the handler's `ctx.signal` fires, before Lambda's own
 * timeout would end the invocation. Any other event is answered with a
 * 400 error JSON, `{"error": {...}}`, naming what was expected.
 * @example
 * // the entry `micro-fn build --target lambda` bundles as index.mjs (Lambda handler `index.handler`)
 * import helloworld from './index.ts';
 * export const handler = createHandler(helloworld);
 */
export function createHandler(definition: ServiceDefinition, env: Env = process.env): LambdaHandler {
  return handlerParts(definition, env).answer;
}

/** What a Lambda handler of `definition` is made of: its Runner, its fetch handler, and the plain handler. */
export interface HandlerParts {
  runner: Runner;
  fetch: FetchHandler;
  answer: LambdaHandler;
}

/** The parts createHandler (and stream.ts's createStreamingHandler) build a handler from. */
export function handlerParts(definition: ServiceDefinition, env: Env = process.env): HandlerParts {
  const runner = new Runner(definition, {
    env,
    // A bundle whose function never calls out has no client to open them (build-constants.ts), nor their code.
    plugins: globalThis.__MICRO_FN_NO_CLIENT__ ? noPlugins : () => resolvePlugins(env),
    scope: 'host',
    grace: LAMBDA_GRACE,
    tracing: tracingOf(env),
  });
  const fetch = createFetchHandler(runner);
  const http = httpHandler(runner, fetch);
  const answer: LambdaHandler = async (event, context) => {
    if (isDirectEvent(event)) return handleDirect(event, context, runner);
    if (isHttpEvent(event)) return http(event, context);
    if (isSqsEvent(event)) return handleSqs(event, context, runner);
    return { error: errors.badRequest(definition.name, `unsupported event: ${EXPECTED}`).toJSON() } satisfies {
      error: ErrorJSON;
    };
  };
  return { runner, fetch, answer };
}
