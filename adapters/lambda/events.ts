/**
 * The Lambda event shapes the handler understands, with the platform's own names (the subset of
 * `@types/aws-lambda` it reads), and a type guard per shape. No import: this ships inside the function.
 */

/** The invocation context Lambda passes to the handler (the part micro-fn reads). */
export interface Context {
  awsRequestId: string;
  functionName?: string;
  /** Milliseconds until Lambda stops the invocation. */
  getRemainingTimeInMillis(): number;
  /**
   * Whether the runtime waits for an empty event loop before it takes the next event (default true where it applies:
   * a streamed response's context). micro-fn sets it false: a host's plugins keep connections open on purpose.
   */
  callbackWaitsForEmptyEventLoop?: boolean;
}

/**
 * A direct invocation (`aws lambda invoke`, micro-fn's Lambda transport): one RPC request, or one broker
 * message when `topic` is given instead of `endpoint`.
 */
export interface DirectEvent {
  endpoint?: string;
  topic?: string;
  /** The request or message, as JSON. */
  body?: unknown;
  metadata?: Record<string, string>;
}

/** A Function URL or API Gateway HTTP API (payload format 2.0) request. */
export interface APIGatewayProxyEventV2 {
  version: '2.0';
  rawPath: string;
  rawQueryString?: string;
  headers?: Record<string, string | undefined>;
  body?: string;
  isBase64Encoded?: boolean;
  requestContext: { requestId?: string; stage?: string; http: { method: string; path?: string } };
}

/** What a Function URL / HTTP API integration takes back. */
export interface APIGatewayProxyStructuredResultV2 {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
  isBase64Encoded: boolean;
}

export interface SQSMessageAttribute {
  dataType: string;
  stringValue?: string;
}

export interface SQSRecord {
  messageId: string;
  body: string;
  eventSource: 'aws:sqs';
  eventSourceARN?: string;
  attributes?: { ApproximateReceiveCount?: string };
  messageAttributes?: Record<string, SQSMessageAttribute>;
}

export interface SQSEvent {
  Records: SQSRecord[];
}

/** The partial batch response: only these records return to the queue (needs `ReportBatchItemFailures`). */
export interface SQSBatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isStringRecord = (value: unknown): value is Record<string, string> =>
  isObject(value) && Object.values(value).every((v) => typeof v === 'string');

export function isDirectEvent(event: unknown): event is DirectEvent {
  if (!isObject(event)) return false;
  const { endpoint, topic, metadata } = event;
  // Exactly one of endpoint and topic: both at once is a mistake, not a guess to make.
  return (
    (typeof endpoint === 'string') !== (typeof topic === 'string') &&
    (metadata === undefined || isStringRecord(metadata))
  );
}

export function isHttpEvent(event: unknown): event is APIGatewayProxyEventV2 {
  return (
    isObject(event) &&
    event.version === '2.0' &&
    typeof event.rawPath === 'string' &&
    isObject(event.requestContext) &&
    isObject(event.requestContext.http)
  );
}

export function isSqsEvent(event: unknown): event is SQSEvent {
  return (
    isObject(event) &&
    Array.isArray(event.Records) &&
    event.Records.length > 0 &&
    event.Records.every(
      (r) =>
        isObject(r) && r.eventSource === 'aws:sqs' && typeof r.messageId === 'string' && typeof r.body === 'string',
    )
  );
}
