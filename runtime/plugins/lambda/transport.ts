/**
 * The Lambda transport: `lambda://REGION/NAME[:QUALIFIER]` node addresses, reached with Lambda's Invoke API.
 * A call is a RequestResponse invoke of the direct-invocation event the Lambda handler understands,
 * `{"endpoint","body","metadata"}`; its reply, `{"body","metadata"}` or `{"error","metadata"}`, becomes the
 * TransportResponse. The AWS SDK loads on the first invoke.
 */
import type { InvocationResponse, LambdaClient } from '@aws-sdk/client-lambda';
import {
  Metadata,
  MicroError,
  errors,
  headers,
  isMicroError,
  jsonCodec,
  parseError,
  type BrokerMessage,
  type CallOptions,
  type Env,
  type MessageOutcome,
  type NodeRecord,
  type Transport,
  type TransportRequest,
  type TransportResponse,
} from '../../core/index.js';
import {
  LAMBDA_ENDPOINT_METADATA,
  LAMBDA_STREAMING_METADATA,
  parseLambdaAddress,
  type LambdaAddress,
} from './address.js';
import { createLambdaClient, loadLambdaSdk, type LambdaSdk } from './client.js';
import { invokeFailure, functionError } from './failures.js';
import type {} from '../../core/build-constants.js';
import { streamedReply } from './stream.js';

/** Stream replies; a bundle built without streams carries none of it (core/build-constants.ts). */
const streaming = globalThis.__MICRO_FN_NO_STREAMS__ ? undefined : { streamedReply };

export interface LambdaTransportOptions {
  /**
   * The Lambda API for nodes that do not name their own (`lambda-endpoint` metadata, which wins).
   * Default: the environment's `AWS_ENDPOINT_URL_LAMBDA`, else AWS.
   */
  endpoint?: string;
  /** Where AWS settings are read. Default process.env. */
  env?: Env;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Invokes Lambda functions. Retries are the client's business, so the SDK makes one attempt per call.
 * @example
 * const client = createClient({ registry, transports: [createHttpTransport(), createLambdaTransport()] });
 * await client.call('helloworld', 'Greeter.Hello', { name: 'Ada' }); // a node lambda://us-east-1/helloworld:live
 */
export class LambdaTransport implements Transport {
  readonly schemes = ['lambda'] as const;
  readonly #env: Env;
  readonly #endpoint: string | undefined;
  #sdk: Promise<LambdaSdk> | undefined;
  readonly #clients = new Map<string, LambdaClient>();

  constructor(options: LambdaTransportOptions = {}) {
    this.#env = options.env ?? process.env;
    this.#endpoint = options.endpoint ?? (this.#env.AWS_ENDPOINT_URL_LAMBDA || undefined);
  }

  async call(node: NodeRecord, request: TransportRequest, options: CallOptions = {}): Promise<TransportResponse> {
    const id = request.service || 'micro-fn';
    if (request.contentType.split(';')[0]!.trim() !== jsonCodec.contentType) {
      throw errors.badRequest(id, `the Lambda transport carries JSON only; this request is ${request.contentType}`);
    }
    const event = {
      endpoint: request.endpoint,
      body: jsonCodec.decode(request.body),
      metadata: { ...request.metadata.toJSON(), [headers.id]: request.id },
    };
    if (node.metadata[LAMBDA_STREAMING_METADATA] === 'true') return this.#invokeStreaming(node, event, id, options);
    const out = await this.#invoke(node, event, id, options);
    return replyOf(out, id);
  }

  /**
   * One InvokeWithResponseStream of `event` (a function whose handler streams, see LAMBDA_STREAMING_METADATA): its
   * reply is read as it comes (stream.ts); the deadline and the caller's signal bound the whole stream.
   */
  async #invokeStreaming(
    node: NodeRecord,
    event: unknown,
    id: string,
    options: CallOptions,
  ): Promise<TransportResponse> {
    const { address, sdk, endpoint } = await this.#target(node, id, options);
    const { signal, deadline } = options;
    const controller = new AbortController();
    const timer = deadline === undefined ? undefined : setTimeout(() => controller.abort(), deadline - Date.now());
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    const release = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    try {
      const command = new sdk.InvokeWithResponseStreamCommand({
        FunctionName: address.name,
        Qualifier: address.qualifier,
        Payload: encoder.encode(JSON.stringify(event)),
      });
      const out = await this.#client(sdk, address, endpoint).send(command, { abortSignal: controller.signal });
      const response = await streaming!.streamedReply(
        out.EventStream ?? (async function* () {})(),
        id,
        () => controller.abort(),
        (code, details) =>
          functionError(
            {
              FunctionError: code,
              Payload: encoder.encode(JSON.stringify({ errorType: code, errorMessage: details })),
            },
            id,
          ),
      );
      if (!response.stream) release();
      else void response.stream.end.finally(release);
      return response;
    } catch (err) {
      release();
      if (controller.signal.aborted) throw aborted(id, signal, err);
      if (isMicroError(err)) throw err;
      throw invokeFailure(err, id, address, endpoint);
    }
  }

  /** Where `node` is, with the SDK loaded; a node that is no Lambda address, or a call already over, throws. */
  async #target(
    node: NodeRecord,
    id: string,
    options: CallOptions,
  ): Promise<{ address: LambdaAddress; sdk: LambdaSdk; endpoint: string | undefined }> {
    const address = parseLambdaAddress(node.address);
    if (!address)
      throw errors.internal(id, `"${node.address}" is not a Lambda node address: lambda://REGION/FUNCTION[:ALIAS]`);
    if (options.signal?.aborted || (options.deadline !== undefined && options.deadline <= Date.now()))
      throw aborted(id, options.signal);
    const sdk = await (this.#sdk ??= loadLambdaSdk()).catch((err: Error) => {
      this.#sdk = undefined;
      throw errors.internal(id, err.message, { cause: err });
    });
    return { address, sdk, endpoint: node.metadata[LAMBDA_ENDPOINT_METADATA] || this.#endpoint };
  }

  /**
   * Hands one broker message to the function as a direct `{"topic","body","metadata"}` invocation and waits
   * for its outcome: RequestResponse, not Event, so the caller (micro-fn serve's bridge) acks only after the
   * function succeeded, and the broker's redelivery and dead letters apply rather than Lambda's own retries.
   */
  async deliver(node: NodeRecord, message: BrokerMessage): Promise<MessageOutcome> {
    const id = parseLambdaAddress(node.address)?.name ?? 'micro-fn';
    try {
      const event = {
        topic: message.topic,
        body: jsonCodec.decode(message.body),
        metadata: { ...message.headers, [headers.id]: message.id },
      };
      const out = await this.#invoke(node, event, id, {});
      return out.FunctionError ? { ok: false, error: functionError(out, id) } : { ok: true };
    } catch (err) {
      return { ok: false, error: isMicroError(err) ? err : errors.internal(id, String(err)) };
    }
  }

  async close(): Promise<void> {
    for (const client of this.#clients.values()) client.destroy();
    this.#clients.clear();
  }

  /** One RequestResponse Invoke of `event`. */
  async #invoke(node: NodeRecord, event: unknown, id: string, options: CallOptions): Promise<InvocationResponse> {
    const address = parseLambdaAddress(node.address);
    if (!address)
      throw errors.internal(id, `"${node.address}" is not a Lambda node address: lambda://REGION/FUNCTION[:ALIAS]`);
    const { signal, deadline } = options;
    if (signal?.aborted || (deadline !== undefined && deadline <= Date.now())) throw aborted(id, signal);
    const sdk = await (this.#sdk ??= loadLambdaSdk()).catch((err: Error) => {
      this.#sdk = undefined;
      throw errors.internal(id, err.message, { cause: err });
    });
    const endpoint = node.metadata[LAMBDA_ENDPOINT_METADATA] || this.#endpoint;
    // Our own signal, linked to the caller's and the deadline's, so the SDK's listener never outlives the call.
    const controller = new AbortController();
    const timer = deadline === undefined ? undefined : setTimeout(() => controller.abort(), deadline - Date.now());
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const command = new sdk.InvokeCommand({
        FunctionName: address.name,
        Qualifier: address.qualifier,
        InvocationType: 'RequestResponse',
        Payload: encoder.encode(JSON.stringify(event)),
      });
      return await this.#client(sdk, address, endpoint).send(command, { abortSignal: controller.signal });
    } catch (err) {
      if (controller.signal.aborted) throw aborted(id, signal, err);
      throw invokeFailure(err, id, address, endpoint);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  #client(sdk: LambdaSdk, address: LambdaAddress, endpoint: string | undefined): LambdaClient {
    const key = `${address.region} ${endpoint ?? ''}`;
    let client = this.#clients.get(key);
    if (!client)
      this.#clients.set(
        key,
        (client = createLambdaClient(sdk, { region: address.region, endpoint, env: this.#env, maxAttempts: 1 })),
      );
    return client;
  }
}

/** Creates the Lambda transport. */
export function createLambdaTransport(options?: LambdaTransportOptions): LambdaTransport {
  return new LambdaTransport(options);
}

/** The direct-invocation reply as a TransportResponse; a function error (init, crash, timeout) as an error. */
function replyOf(out: InvocationResponse, id: string): TransportResponse {
  if (out.FunctionError) return errorResponse(functionError(out, id), {});
  let reply: { body?: unknown; error?: unknown; metadata?: unknown } | undefined;
  try {
    reply = JSON.parse(decoder.decode(out.Payload ?? new Uint8Array()));
  } catch {
    reply = undefined;
  }
  const metadata = isStringRecord(reply?.metadata) ? reply.metadata : {};
  if (reply && typeof reply === 'object' && 'error' in reply)
    return errorResponse(parseError(reply.error, 500, id), metadata);
  if (reply && typeof reply === 'object' && 'body' in reply)
    return { contentType: jsonCodec.contentType, body: jsonCodec.encode(reply.body), metadata: new Metadata(metadata) };
  return errorResponse(
    errors.internal(
      id,
      `${id} answered with something other than a micro-fn reply: is it deployed with micro-fn deploy --target lambda?`,
    ),
    {},
  );
}

function errorResponse(error: MicroError, metadata: Record<string, string>): TransportResponse {
  return {
    contentType: jsonCodec.contentType,
    body: jsonCodec.encode(error.toJSON()),
    metadata: new Metadata(metadata),
    error,
  };
}

function aborted(id: string, signal: AbortSignal | undefined, cause?: unknown): MicroError {
  return errors.timeout(id, signal?.aborted ? 'request aborted' : 'deadline exceeded', { retryable: false, cause });
}

const isStringRecord = (value: unknown): value is Record<string, string> =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  Object.values(value).every((v) => typeof v === 'string');
