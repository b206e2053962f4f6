/**
 * SQS batches: one Function run per record, in order. Failed records are reported in `batchItemFailures`
 * (the event source mapping needs `FunctionResponseTypes: ["ReportBatchItemFailures"]`), so only they return
 * to the queue; the batch as a whole never fails for one bad record.
 */
import { Metadata, errors, headers, jsonCodec, limitTimeout, type Runner } from '../../runtime/index.js';
import { handlerBudget } from './deadline.js';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from './events.js';

/** The message attribute that names a record's topic; without it, a function with one subscriber gets it. */
export const TOPIC_ATTRIBUTE = 'Micro-Topic';

const encoder = new TextEncoder();

/** Delivers every record and reports the ones that failed. Never throws. */
export async function handleSqs(event: SQSEvent, context: Context, runner: Runner): Promise<SQSBatchResponse> {
  const failures: SQSBatchResponse['batchItemFailures'] = [];
  for (const record of event.Records) {
    // A FIFO queue keeps order only if nothing after a failed record is handled before it is retried.
    if (failures.length > 0 && record.eventSourceARN?.endsWith('.fifo')) {
      failures.push({ itemIdentifier: record.messageId });
      continue;
    }
    if (!(await deliver(record, context, runner))) failures.push({ itemIdentifier: record.messageId });
  }
  return { batchItemFailures: failures };
}

async function deliver(record: SQSRecord, context: Context, runner: Runner): Promise<boolean> {
  const attributes: Record<string, string> = {};
  for (const [key, attribute] of Object.entries(record.messageAttributes ?? {})) {
    if (attribute?.stringValue !== undefined) attributes[key] = attribute.stringValue;
  }
  const metadata = limitTimeout(
    new Metadata({ [headers.contentType]: jsonCodec.contentType, ...attributes }),
    handlerBudget(context),
  );
  const topic = metadata.get(TOPIC_ATTRIBUTE) ?? (runner.topics.length === 1 ? runner.topics[0] : undefined);
  if (topic === undefined) {
    const error = errors.badRequest(
      runner.name,
      `SQS message ${record.messageId} names no topic and ${runner.name} subscribes to ${runner.topics.length === 0 ? 'none' : runner.topics.join(', ')}: send it with the message attribute ${TOPIC_ATTRIBUTE}`,
    );
    console.error(JSON.stringify(error));
    return false;
  }
  const attempt = Number(record.attributes?.ApproximateReceiveCount) || 1;
  const outcome = await runner.deliver(
    { id: record.messageId, topic, headers: metadata.toJSON(), body: encoder.encode(record.body) },
    attempt,
  );
  return outcome.ok;
}
