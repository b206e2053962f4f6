/**
 * One Lambda execution environment serves many invocations, one at a time; each is a fresh one-shot Function
 * of the same definition. What they share is the plugins their clients reach (registry, broker,
 * transports), opened on the first call out and kept for the warm invocations that follow.
 */
import { Client, Metadata, Router, createFunction, headers, type BrokerMessage, type Env, type MessageOutcome, type ServerRequest, type ServerResponse, type ServiceDefinition } from '../../runtime/index.js';
import { resolvePlugins, type Plugins } from '../../runtime/plugins/resolve.js';

/** Runs invocations of one definition, each in its own Function. */
export interface Runner {
  readonly name: string;
  /** The topics the definition subscribes to. */
  readonly topics: readonly string[];
  invoke(request: ServerRequest): Promise<ServerResponse>;
  deliver(message: BrokerMessage, attempt: number): Promise<MessageOutcome>;
}

/** A Runner for `definition`, configured by `env` (the function's environment variables). */
export function createRunner(definition: ServiceDefinition, env: Env): Runner {
  let plugins: Promise<Plugins> | undefined;
  // Memoised across invocations; a failure (NATS unreachable, say) is not: the next invocation tries again.
  const load = () =>
    (plugins ??= resolvePlugins(env).catch((err: unknown) => {
      plugins = undefined;
      throw err;
    }));
  const create = () => createFunction(definition, { client: new Client({ load }), env });
  return {
    name: definition.name,
    topics: new Router(definition).topics,
    async invoke(request) {
      const fn = create();
      await fn.start();
      try {
        return await fn.invoke(request);
      } finally {
        await fn.stop(); // a probe leaves the function waiting: end it
      }
    },
    async deliver(message, attempt) {
      const fn = create();
      await fn.start();
      return fn.deliver(message, attempt);
    },
  };
}

/**
 * Request metadata with the invocation's deadline: Lambda's remaining time, or the caller's own
 * `Micro-Timeout` when that is shorter.
 */
export function withDeadline(metadata: Record<string, string | undefined>, remainingMs: number): Metadata {
  const md = new Metadata(metadata);
  const asked = Number(md.get(headers.timeout));
  md.set(headers.timeout, String(Math.max(1, Math.floor(Number.isFinite(asked) && asked > 0 ? Math.min(asked, remainingMs) : remainingMs))));
  return md;
}
