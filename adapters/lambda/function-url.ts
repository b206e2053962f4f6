/**
 * Function URL and API Gateway HTTP API (payload 2.0) requests, spoken as mucp over HTTP: `POST /` with
 * `Micro-Service` / `Micro-Endpoint` headers, or `POST /<service>/<Service.Method>`; `GET /health` is a probe.
 * Replies carry the status, the response metadata as headers, and errors as error JSON (body and `Micro-Error`).
 */
import { HEALTH_ENDPOINT, MicroError, errors, headers as names, jsonCodec, type ServerResponse } from '../../runtime/index.js';
import { errorHeaderValue, isTransportHeader, responseHeaders } from '../../runtime/plugins/http/headers.js';
import { handMadeContentType } from '../../runtime/plugins/http/route.js';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from './events.js';
import { withDeadline, type Runner } from './runner.js';

/** Runs the request and answers it the way Function URLs and HTTP APIs expect. Never throws. */
export async function handleHttp(event: APIGatewayProxyEventV2, context: Context, runner: Runner): Promise<APIGatewayProxyStructuredResultV2> {
  const id = event.headers?.[names.id] ?? context.awsRequestId;
  const method = event.requestContext.http.method.toUpperCase();
  const path = event.rawPath.replace(/\/+$/, '');
  const probe = method === 'GET' && (path.endsWith('/health') || path.endsWith('/healthz'));
  if (method !== 'POST' && !probe) return errorResult(id, errors.methodNotAllowed(runner.name, `${method} is not served: POST /<service>/<Service.Method>, or GET /health`));
  const route: Route | undefined = probe ? { service: runner.name, endpoint: HEALTH_ENDPOINT } : routeOf(event, path);
  if (!route) return errorResult(id, errors.badRequest(runner.name, 'name the endpoint: POST /<service>/<Service.Method>, or POST / with Micro-Service and Micro-Endpoint headers'));
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    // API Gateway's own x-forwarded-* describe the connection, as Host does.
    if (value !== undefined && !isTransportHeader(key) && !key.startsWith('x-forwarded-')) metadata[key] = value;
  }
  const contentType = event.headers?.[names.contentType] ?? jsonCodec.contentType;
  const response = await runner.invoke({
    id,
    service: route.service,
    endpoint: route.endpoint,
    contentType: route.byPath ? handMadeContentType(contentType) : contentType,
    body: event.body === undefined ? new Uint8Array() : Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8'),
    metadata: withDeadline(metadata, context.getRemainingTimeInMillis()),
    probe,
  });
  return result(id, response);
}

interface Route {
  service: string;
  endpoint: string;
  /** Named by the path, not the headers: a hand-made request (see handMadeContentType). */
  byPath?: boolean;
}

/**
 * The service and endpoint from the headers, else from the last two path segments: an API Gateway stage
 * (`/prod/helloworld/Greeter.Hello`) comes before them.
 */
function routeOf(event: APIGatewayProxyEventV2, path: string): Route | undefined {
  const endpoint = event.headers?.[names.endpoint];
  if (endpoint) return { service: event.headers?.[names.service] ?? '', endpoint };
  let segments: string[];
  try {
    segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return undefined; // a malformed %-escape
  }
  if (segments.length < 2) return undefined;
  return { service: segments.at(-2)!, endpoint: segments.at(-1)!, byPath: true };
}

function result(id: string, response: ServerResponse): APIGatewayProxyStructuredResultV2 {
  const head: Record<string, string> = {};
  for (const [key, value] of Object.entries(responseHeaders(response.metadata))) head[key] = String(value);
  head[names.contentType] = response.contentType;
  head[names.id] = id;
  if (response.error) head[names.error] = errorHeaderValue(response.error);
  // Text for JSON and text replies; anything else travels base64, which the integration decodes.
  const text = /^(application\/json|text\/)/.test(response.contentType);
  const body = Buffer.from(response.body.buffer, response.body.byteOffset, response.body.byteLength);
  return { statusCode: response.status, headers: head, body: body.toString(text ? 'utf8' : 'base64'), isBase64Encoded: !text };
}

function errorResult(id: string, error: MicroError): APIGatewayProxyStructuredResultV2 {
  return { statusCode: error.code, headers: { [names.contentType]: 'application/json', [names.id]: id, [names.error]: errorHeaderValue(error) }, body: JSON.stringify(error), isBase64Encoded: false };
}
