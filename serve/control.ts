/**
 * The control service of `micro-fn serve`, named `micro-fn`: what `micro-fn deploy`, `remove`, `publish` and
 * `dlq` call through the registry, like any other service.
 */
import { deadLetterTopic, type DeliveryFailure } from '../runtime/core/broker.js';
import { errors } from '../runtime/core/errors.js';
import type { ServiceDefinition } from '../runtime/core/router.js';
import { RUNTIME_SERVICE, SETTLE_ACTIONS, type SettleAction } from '../runtime/plugins/local/protocol.js';
import type { LocalRuntime } from './runtime.js';
import { checkDeploy, checkName } from './validate.js';

export { RUNTIME_SERVICE, type DeployRequest, type FunctionInfo } from '../runtime/plugins/local/protocol.js';

const record = (value: unknown, what: string): Record<string, unknown> => {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw errors.badRequest(RUNTIME_SERVICE, `${what} takes a JSON object`);
  return value as Record<string, unknown>;
};

const text = (value: unknown, field: string): string => {
  if (typeof value !== 'string' || value === '') throw errors.badRequest(RUNTIME_SERVICE, `${field} is required`);
  return value;
};

export function runtimeDefinition(runtime: LocalRuntime): ServiceDefinition {
  return {
    name: RUNTIME_SERVICE,
    handlers: {
      Runtime: {
        Deploy: async (req: unknown) => runtime.deploy(await checkDeploy(req, runtime.options.home)),
        Remove: async (req: unknown) => {
          const name = checkName('function', record(req, 'Runtime.Remove').name);
          if (!(await runtime.remove(name))) throw errors.notFound(RUNTIME_SERVICE, `no function ${name} is deployed`);
          return { removed: name };
        },
        List: () => ({ functions: runtime.list() }),
        Stats: () => runtime.stats(),
      },
      Broker: {
        Publish: async (req: unknown) => {
          const r = record(req, 'Broker.Publish');
          const topic = checkName('topic', r.topic);
          const headers = { 'content-type': 'application/json', ...stringRecord(r.headers, 'headers') };
          // `body`: already encoded (the local broker plugin); `payload`: a JSON value (the CLI).
          const body = typeof r.body === 'string' ? r.body : JSON.stringify(r.payload ?? null);
          await runtime.publish(topic, new TextEncoder().encode(body), headers);
          return {};
        },
        // Subscriptions of other processes (the local broker plugin): see remote-broker.ts.
        Subscribe: async (req: unknown) => {
          const r = record(req, 'Broker.Subscribe');
          const max = r.max === undefined ? undefined : Number(r.max);
          const id = await runtime.remote.subscribe(
            subscribable(r.topic),
            typeof r.queue === 'string' ? r.queue : undefined,
            max,
          );
          return { id, ackWait: runtime.remote.ackWait };
        },
        Poll: async (req: unknown) => {
          const r = record(req, 'Broker.Poll');
          const wait = Math.min(Math.max(Number(r.wait ?? 0) || 0, 0), 25_000);
          return { delivery: (await runtime.remote.poll(text(r.id, 'id'), wait)) ?? null };
        },
        Settle: async (req: unknown) => {
          const r = record(req, 'Broker.Settle');
          const action = SETTLE_ACTIONS.includes(r.action as SettleAction) ? (r.action as SettleAction) : undefined;
          if (!action) throw errors.badRequest(RUNTIME_SERVICE, 'action must be ack, nak, term or progress');
          await runtime.remote.settle(
            text(r.id, 'id'),
            text(r.token, 'token'),
            action,
            typeof r.delay === 'number' ? r.delay : undefined,
            typeof r.reason === 'string' ? r.reason : undefined,
            failure(r.error),
          );
          return {};
        },
        Unsubscribe: async (req: unknown) => {
          await runtime.remote.unsubscribe(text(record(req, 'Broker.Unsubscribe').id, 'id'));
          return {};
        },
      },
      // The key-value store (serve/store-control.ts).
      Store: runtime.store.handlers(),
      Dashboard: {
        Login: () => {
          if (!runtime.dashboard)
            throw errors.notFound(
              RUNTIME_SERVICE,
              'this micro-fn serve runs without a dashboard (--no-dashboard, or its address was taken): start it with --dashboard 127.0.0.1:PORT',
            );
          return runtime.dashboard.login();
        },
      },
      Dlq: {
        List: async (req: unknown) => ({
          messages: await runtime.deadLetters().list(checkName('topic', record(req, 'Dlq.List').topic)),
        }),
        Replay: async (req: unknown) => {
          const topic = checkName('topic', record(req, 'Dlq.Replay').topic);
          const replayed = await runtime
            .deadLetters()
            .replay(topic, (body, headers) => runtime.publish(topic, body, headers));
          return { replayed };
        },
      },
    },
  };
}

/** Why a subscriber nakked, as it said: `{code, detail}` (anything else: not said). */
function failure(value: unknown): DeliveryFailure | undefined {
  const v = value as DeliveryFailure | undefined;
  if (typeof v !== 'object' || v === null || typeof v.code !== 'number' || typeof v.detail !== 'string')
    return undefined;
  return { code: v.code, detail: v.detail };
}

/** Headers as sent: an object of strings (absent: none). */
function stringRecord(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  const r = record(value, field);
  for (const [k, v] of Object.entries(r))
    if (typeof v !== 'string') throw errors.badRequest(RUNTIME_SERVICE, `${field}.${k} must be a string`);
  return r as Record<string, string>;
}

/** A topic to subscribe to: a topic, or the dead-letter topic of one (`dlq.<topic>`). */
function subscribable(value: unknown): string {
  const topic = typeof value === 'string' && value.startsWith(DLQ_PREFIX) ? value.slice(DLQ_PREFIX.length) : value;
  checkName('topic', topic);
  return value as string;
}

const DLQ_PREFIX = deadLetterTopic('');
