/**
 * The target contract on AWS Lambda: each function's built zip in its own execution environment under the official
 * runtime interface client. HTTP arrives as Function URL (payload 2.0) events, messages as SQS events.
 */
import { randomUUID } from 'node:crypto';
import type { APIGatewayProxyStructuredResultV2, SQSBatchResponse } from '../../../adapters/lambda/events.js';
import { TOPIC_ATTRIBUTE } from '../../../adapters/lambda/sqs.js';
import { LambdaEnvironment } from '../../../serve/lambda/environment.js';
import { outputSettled, targetContract, type TargetFunction, type TargetHost } from '../../contracts/target.js';
import { withTimeout } from '../../helpers.js';
import { buildPackage, runWithRic, type Package } from './helpers.js';

const REGION = 'us-east-1';
/** The function's timeout (Lambda's default is 3 s; a 1 MiB body takes longer on a busy machine). */
const TIMEOUT_MS = 10_000;

/** The event a Function URL makes of `request` (payload format 2.0), as AWS documents it. */
async function functionUrlEvent(request: Request): Promise<unknown> {
  const url = new URL(request.url);
  const bytes = Buffer.from(await request.arrayBuffer());
  const headers: Record<string, string> = { host: url.host, 'x-forwarded-proto': 'https' };
  for (const [key, value] of request.headers) headers[key] = value;
  if (bytes.length > 0) headers['content-length'] = String(bytes.length);
  // A Function URL passes text bodies as they are and base64-encodes the rest.
  const text = /^(application\/json|text\/)/.test(headers['content-type'] ?? '');
  const now = new Date();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: 'anonymous',
      apiId: url.host.split('.')[0],
      domainName: url.host,
      domainPrefix: url.host.split('.')[0],
      http: { method: request.method, path: url.pathname, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1' },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    body: bytes.length > 0 ? bytes.toString(text ? 'utf8' : 'base64') : undefined,
    isBase64Encoded: bytes.length > 0 && !text,
  };
}

/** One SQS record of `topic` (its queue named after it, dots as dashes), as an event source mapping sends it. */
function sqsEvent(messageId: string, topic: string, payload: unknown): unknown {
  const now = String(Date.now());
  return {
    Records: [
      {
        messageId,
        receiptHandle: `handle-${messageId}`,
        body: JSON.stringify(payload),
        attributes: { ApproximateReceiveCount: '1', SentTimestamp: now, ApproximateFirstReceiveTimestamp: now },
        messageAttributes: { [TOPIC_ATTRIBUTE]: { dataType: 'String', stringValue: topic } },
        md5OfBody: '',
        eventSource: 'aws:sqs',
        eventSourceARN: `arn:aws:sqs:${REGION}:000000000000:${topic.replaceAll('.', '-')}`,
        awsRegion: REGION,
      },
    ],
  };
}

async function startLambda(functions: readonly TargetFunction[]): Promise<TargetHost> {
  const packages: Package[] = [];
  const environments = new Map<string, LambdaEnvironment>();
  const outputs = new Map<string, string>();
  const close = async () => {
    await Promise.allSettled([...environments.values()].map((env) => env.close()));
    for (const pkg of packages) pkg.cleanup();
  };
  // Settled, not raced: a failure closes only once every start has finished.
  const started = await Promise.allSettled(
    functions.map(async ({ name, entry }) => {
      const pkg = await buildPackage(entry);
      packages.push(pkg);
      outputs.set(name, '');
      const onOutput = (text: string) => void outputs.set(name, `${outputs.get(name)}${text}`);
      const options = { taskRoot: pkg.taskRoot, functionName: name, region: REGION, onOutput };
      environments.set(name, await LambdaEnvironment.start(options));
    }),
  );
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await close();
    throw failed.reason;
  }
  const of = (fn: string): LambdaEnvironment => {
    const env = environments.get(fn);
    if (!env) throw new Error(`no Lambda function ${fn}`);
    return env;
  };
  const invoke = async (fn: string, event: unknown) =>
    withTimeout(of(fn).invoke(event, { timeoutMs: TIMEOUT_MS }), TIMEOUT_MS + 5000, `invoking ${fn}`);
  return {
    async fetch(fn, path, init) {
      const url = `https://${fn}.lambda-url.${REGION}.on.aws${path}`;
      const result = await invoke(fn, await functionUrlEvent(new Request(url, init)));
      // A function that fails (rather than answering an error status) gets a Function URL's 502.
      if ('error' in result) return new Response(JSON.stringify(result.error), { status: 502 });
      const r = JSON.parse(result.payload) as APIGatewayProxyStructuredResultV2;
      const body = Buffer.from(r.body, r.isBase64Encoded ? 'base64' : 'utf8');
      return new Response(body, { status: r.statusCode, headers: r.headers });
    },
    async ready(fn) {
      await withTimeout(of(fn).initialized, 15_000, `${fn}'s init`);
      await outputSettled(async () => outputs.get(fn) ?? '');
    },
    output: async (fn) => outputs.get(fn) ?? '',
    messages: {
      // A record in batchItemFailures returns to the queue, which delivers it again later (then to its DLQ).
      attempts: 1,
      async deliver(fn, topic, payload) {
        const messageId = randomUUID();
        const result = await invoke(fn, sqsEvent(messageId, topic, payload));
        // handleSqs never throws: a failed invocation (which would retry the whole batch) breaks the contract.
        if ('error' in result) throw new Error(`the SQS invocation failed: ${JSON.stringify(result.error)}`);
        const { batchItemFailures } = JSON.parse(result.payload) as SQSBatchResponse;
        const failed = batchItemFailures.some((f) => f.itemIdentifier === messageId);
        return failed ? { acked: false, attempts: 1 } : { acked: true };
      },
    },
    close,
  };
}

runWithRic(targetContract('AWS Lambda (runtime interface client)', startLambda));
