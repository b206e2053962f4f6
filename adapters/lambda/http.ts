/**
 * Function URL and API Gateway HTTP API (payload 2.0) requests: the event becomes a Web `Request`, the one
 * mucp-over-HTTP fetch handler (runtime/plugins/http/fetch.ts) answers it, and its `Response` becomes the result
 * Lambda expects. The routing rules are the fetch handler's, the same on every host.
 */
import { createFetchHandler, type FetchHandler } from '../../runtime/plugins/http/fetch.js';
import type { Runner } from '../../runtime/core/runner.js';
import { handlerBudget } from './deadline.js';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from './events.js';

/** The handler for one runner's HTTP events. Never throws. */
export function httpHandler(
  runner: Runner,
  fetch: FetchHandler = createFetchHandler(runner),
): (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2> {
  return async (event, context) =>
    fromResponse(await fetch(toRequest(event, context), { remainingMs: handlerBudget(context) }));
}

/** The event as the Request a client sent: its method, path (without an API Gateway stage), headers and body. */
export function toRequest(event: APIGatewayProxyEventV2, context: Context): Request {
  const { method } = event.requestContext.http;
  const stage = event.requestContext.stage;
  let path = event.rawPath || '/';
  // A named stage prefixes the path (`/prod/helloworld/Greeter.Hello`); `$default` does not.
  if (stage && stage !== '$default' && (path === `/${stage}` || path.startsWith(`/${stage}/`)))
    path = path.slice(stage.length + 1) || '/';
  const headers = new Headers();
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    // API Gateway's own x-forwarded-* describe the connection, as Host does: they are no metadata.
    if (value !== undefined && !key.toLowerCase().startsWith('x-forwarded-')) headers.set(key, value);
  }
  if (!headers.has('micro-id')) headers.set('micro-id', context.awsRequestId);
  const query = event.rawQueryString ? `?${event.rawQueryString}` : '';
  const body =
    event.body === undefined || method === 'GET' || method === 'HEAD'
      ? undefined
      : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  return new Request(`https://${headers.get('host') ?? 'lambda'}${path}${query}`, { method, headers, body });
}

/** The Response as a structured result: text for JSON and text replies; anything else base64, which the integration decodes. */
export async function fromResponse(response: Response): Promise<APIGatewayProxyStructuredResultV2> {
  const headers: Record<string, string> = {};
  for (const [key, value] of response.headers) headers[key] = value;
  const contentType = response.headers.get('content-type') ?? '';
  const text = /^(application\/json|text\/)/.test(contentType);
  const bytes = Buffer.from(await response.arrayBuffer());
  return {
    statusCode: response.status,
    headers,
    body: bytes.toString(text ? 'utf8' : 'base64'),
    isBase64Encoded: !text,
  };
}
