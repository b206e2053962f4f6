export { createHandler, type LambdaHandler } from './handler.js';
export { createStreamingHandler, type ResponseStream, type StreamingLambdaHandler } from './stream.js';
export type {
  APIGatewayProxyEventV2,
  APIGatewayProxyStructuredResultV2,
  Context,
  DirectEvent,
  SQSBatchResponse,
  SQSEvent,
  SQSRecord,
} from './events.js';
export type { DirectReply } from './direct.js';
export { TOPIC_ATTRIBUTE } from './sqs.js';
