/**
 * What goes wrong with an Invoke, as core errors: the API's own failures (function unknown, throttled, being
 * updated, credentials missing, unreachable) and a function's (an init error, a crash, a timeout).
 */
import type { InvocationResponse } from '@aws-sdk/client-lambda';
import { MicroError, connectFailure, errors, parseError } from '../../core/index.js';
import type { LambdaAddress } from './address.js';

const decoder = new TextDecoder();

/** The error of an invocation answered with `X-Amz-Function-Error`; the payload is `{errorType, errorMessage}`. */
export function functionError(out: InvocationResponse, id: string): MicroError {
  let payload: { errorType?: unknown; errorMessage?: unknown } = {};
  try {
    payload = JSON.parse(decoder.decode(out.Payload ?? new Uint8Array())) ?? {};
  } catch {
    // not JSON: described by the function error alone
  }
  const type = typeof payload.errorType === 'string' ? payload.errorType : (out.FunctionError ?? 'Unhandled');
  const message = typeof payload.errorMessage === 'string' ? payload.errorMessage : '';
  // A failed message: the handler threw go-micro's error JSON (adapters/lambda/direct.ts).
  if (type === 'MicroError') return parseError(message, 500, id);
  if (type === 'Sandbox.Timedout')
    return errors.timeout(id, message || 'the Lambda function timed out', { retryable: false });
  return errors.internal(id, `${type}: ${message}`.slice(0, 1024));
}

/**
 * An Invoke that the Lambda API refused, or that never reached it. Retryable only where the function provably did
 * not run: throttled (429), being updated or not ready (503), a connection never made.
 */
export function invokeFailure(
  err: unknown,
  id: string,
  address: LambdaAddress,
  endpoint: string | undefined,
): MicroError {
  const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const fn = `Lambda function ${address.name}${address.qualifier ? `:${address.qualifier}` : ''} (${address.region}${endpoint ? ` at ${endpoint}` : ''})`;
  const detail = `${fn}: ${e.message ?? String(err)}`;
  switch (e.name) {
    case 'ResourceNotFoundException':
      return errors.notFound(id, `${detail}; deploy it with micro-fn deploy --target lambda`, { cause: err });
    case 'TooManyRequestsException':
      return errors.tooManyRequests(id, detail, { cause: err });
    case 'ResourceConflictException':
    case 'ResourceNotReadyException':
      return errors.unavailable(id, detail, { cause: err });
    case 'RequestTooLargeException':
      return errors.payloadTooLarge(id, detail, { cause: err });
    case 'CredentialsProviderError':
      return errors.unauthorized(
        id,
        `cannot invoke the ${fn}: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)`,
        { cause: err },
      );
    case 'AccessDeniedException':
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
      return errors.forbidden(id, `${detail} (the caller needs lambda:InvokeFunction on it)`, { cause: err });
  }
  const status = e.$metadata?.httpStatusCode;
  const failure = status === undefined ? connectFailure(err) : undefined;
  if (failure) {
    // Never sent (a refused connection, DNS): another attempt, or another node, may succeed.
    return errors.unavailable(id, `cannot reach the ${fn}: ${e.code ?? e.message ?? String(err)}`, {
      unreachable: failure === 'unreachable',
      cause: err,
    });
  }
  // A connection lost on the way, or a failure of the service (5xx): the function may have run, so never retryable.
  return new MicroError(id, status === undefined ? 503 : status >= 400 ? status : 500, detail, {
    retryable: false,
    cause: err,
  });
}
