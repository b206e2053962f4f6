/**
 * The Lambda plugin: a client transport for `lambda://REGION/NAME[:QUALIFIER]` nodes (functions deployed with
 * `micro-fn deploy --target lambda`). It loads `@aws-sdk/client-lambda` on the first call, never at start-up.
 */
export * from './address.js';
export { LambdaTransport, createLambdaTransport, type LambdaTransportOptions } from './transport.js';
