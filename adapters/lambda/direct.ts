/**
 * Direct invocations: `{"endpoint":"Greeter.Hello","body":{...},"metadata":{...}}` for one RPC request, or
 * `{"topic":"user.created","body":{...}}` for one broker message (what an `Event` invoke carries).
 */
import {
  Metadata,
  errors,
  headers,
  jsonCodec,
  limitTimeout,
  type ErrorJSON,
  type Runner,
  type ServerRequest,
} from '../../runtime/index.js';
import { handlerBudget } from './deadline.js';
import type { Context, DirectEvent } from './events.js';

/** The reply to a direct RPC invocation: the decoded reply or the error JSON, with the response metadata. */
export type DirectReply =
  { body: unknown; metadata: Record<string, string> } | { error: ErrorJSON; metadata: Record<string, string> };

/**
 * Runs the request and returns its reply. An RPC error is a reply too (`{error}`): the invocation itself
 * succeeded. A message that fails throws instead, so Lambda treats the invocation as failed and an
 * asynchronous invoke is retried, then sent to the function's on-failure destination: never lost.
 */
export async function handleDirect(
  event: DirectEvent,
  context: Context,
  runner: Runner,
): Promise<DirectReply | { ok: true }> {
  if (event.topic !== undefined) {
    const { metadata, body } = directRequest(event, context, runner);
    const outcome = await runner.deliver(
      { id: metadata.get(headers.id) ?? context.awsRequestId, topic: event.topic, headers: metadata.toJSON(), body },
      1,
    );
    if (!outcome.ok) throw messageFailed(outcome.error ?? errors.internal(runner.name, 'the subscriber failed'));
    return { ok: true };
  }
  const response = await runner.invoke(directRequest(event, context, runner));
  const md = response.metadata.toJSON();
  if (response.stream) {
    // Only a handler that is not streamified gets here (no `awslambda` global: not the RIC, not Lambda's runtime).
    await response.stream[Symbol.asyncIterator]().return?.();
    const detail = `${event.endpoint} streams its reply: it needs Lambda's response streaming (awslambda.streamifyResponse), which this runtime does not provide`;
    return { error: errors.internal(runner.name, detail).toJSON(), metadata: md };
  }
  if (response.error) return { error: response.error.toJSON(), metadata: md };
  return { body: jsonCodec.decode(response.body), metadata: md };
}

/** The RPC request a direct invocation carries, its deadline Lambda's remaining time or the caller's, if shorter. */
export function directRequest(event: DirectEvent, context: Context, runner: Runner): ServerRequest {
  const metadata = limitTimeout(
    new Metadata({ ...event.metadata, [headers.contentType]: jsonCodec.contentType }),
    handlerBudget(context),
  );
  return {
    id: metadata.get(headers.id) ?? context.awsRequestId,
    service: runner.name,
    endpoint: event.endpoint ?? '',
    contentType: jsonCodec.contentType,
    body: jsonCodec.encode(event.body ?? {}),
    metadata,
  };
}

/**
 * What a failed message throws: Lambda reports it as `{"errorType":"MicroError","errorMessage":<the error
 * JSON>}`, so whoever reads the failure (the caller, a destination, the logs) gets go-micro's error JSON back.
 */
export function messageFailed(error: { toJSON(): ErrorJSON }): Error {
  const err = new Error(JSON.stringify(error.toJSON()));
  err.name = 'MicroError';
  return err;
}
