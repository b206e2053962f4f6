import type { Context, MessageContext } from './context.js';
import { errors } from './errors.js';
import type { EndpointRecord } from './registry.js';
import { STREAM_METADATA, type StreamKind } from './stream.js';

/**
 * An RPC handler: gets the decoded request, returns the reply. Throw a MicroError to answer with an error.
 * `Req` defaults to `any` at this seam: a handler declares the request type it validates.
 */
export type Handler<Req = any, Res = unknown> = (request: Req, ctx: Context) => Res | Promise<Res>;

/**
 * A server stream's handler, as users write it: an async generator. Each `yield` is one message to the caller; it
 * waits until the caller reads (backpressure). Metadata set on `ctx.responseMetadata` before the first `yield` goes
 * with the first message; `ctx.trailers` set until the end goes after the last.
 * @example
 * async *Count(req: { from: number }, ctx: Context): AsyncGenerator<{ n: number }> {
 *   for (let n = req.from; n >= 0 && !ctx.signal.aborted; n--) yield { n };
 * }
 */
export type StreamHandler<Req = any, Res = unknown> = (request: Req, ctx: Context) => AsyncIterable<Res>;

/** A broker subscriber: gets the decoded payload (`any` by default, as for Handler). Throwing fails the message (it is redelivered). */
export type Subscriber<T = any> = (payload: T, ctx: MessageContext) => void | Promise<void>;

/** Runs around every handler: code before `next`, code after, or an answer without calling it. */
export type HandlerWrapper = (
  ctx: Context,
  request: unknown,
  next: (request: unknown) => Promise<unknown>,
) => Promise<unknown>;

/** Runs around every subscriber. */
export type SubscriberWrapper = (
  ctx: MessageContext,
  payload: unknown,
  next: (payload: unknown) => Promise<void>,
) => Promise<void>;

export type Hook = () => void | Promise<void>;

/** An object of handlers (methods typed from context) or any class instance whose methods are handlers. */
export type HandlerGroup = Record<string, Handler> | object;

/**
 * What a user writes: a name, handler groups and subscribers. It holds no plugin: the adapter that runs it
 * (local process, Lambda, Worker) supplies registry, broker and transport.
 */
export interface ServiceDefinition {
  name: string;
  /** Defaults to `latest`. */
  version?: string;
  metadata?: Record<string, string>;
  /**
   * Handler groups: `{ Greeter: new Greeter() }` or `{ Greeter: { Hello(req, ctx) {…} } }`. Every method
   * becomes the endpoint `Greeter.<method>`; methods whose names start with `_` are not exposed.
   */
  handlers?: Record<string, HandlerGroup>;
  /**
   * Endpoints that stream, beyond what their methods say: an async generator method (`async *Count`) is a
   * `'server'` stream by itself; declare `'client'` (its request is an AsyncIterable of messages, it returns one
   * reply), `'bidi'` (both), or `'server'` for a method that returns an AsyncIterable without being a generator.
   * @example
   * streams: { 'Numbers.Sum': 'client', 'Chat.Echo': 'bidi' }
   */
  streams?: Record<string, StreamKind>;
  /** Topic to subscriber: `{ 'user.created': async (event, ctx) => {…} }`. */
  subscribers?: Record<string, Subscriber>;
  wrappers?: HandlerWrapper[];
  subscriberWrappers?: SubscriberWrapper[];
  beforeStart?: Hook | Hook[];
  afterStart?: Hook | Hook[];
  beforeStop?: Hook | Hook[];
  afterStop?: Hook | Hook[];
}

/** The endpoint a health probe asks for. It never uses up a one-shot function's invocation. */
export const HEALTH_ENDPOINT = 'Debug.Health';

type Bound = (request: unknown, ctx: Context) => unknown;
type BoundSubscriber = (payload: unknown, ctx: MessageContext) => void | Promise<void>;

/** Endpoint and topic lookup for one service definition, with the wrappers already applied. */
export class Router {
  readonly #handlers = new Map<string, (ctx: Context, request: unknown) => Promise<unknown>>();
  readonly #subscribers = new Map<string, (ctx: MessageContext, payload: unknown) => Promise<void>>();
  /** Endpoints that stream, and how. */
  readonly #streams = new Map<string, StreamKind>();
  /**
   * The built-in health handler, which no wrapper sees. It is made like every endpoint's, so a probe runs the
   * code an invocation runs: that is how a warm process has it compiled before its one invocation comes.
   */
  readonly #health: (ctx: Context, request: unknown) => Promise<unknown>;
  /** The same, as a server stream of one item: the handler of a probe `'stream'` (see ServerRequest.probe). */
  readonly healthStream: ((ctx: Context, request: unknown) => Promise<unknown>) | undefined;

  constructor(definition: ServiceDefinition) {
    this.#health = wrap(definition.name, [], bind(health));
    if (!globalThis.__MICRO_FN_NO_STREAMS__) this.healthStream = wrap(definition.name, [], bind(healthStream));
    const wrappers = definition.wrappers ?? [];
    for (const [group, target] of Object.entries(definition.handlers ?? {})) {
      if (!globalThis.__MICRO_FN_CHECKED__ && !/^[A-Za-z_$][\w$]*$/.test(group))
        throw new TypeError(`handler group name "${group}" must be an identifier, like "Greeter"`);
      for (const [method, fn, generator] of methodsOf(target)) {
        this.#handlers.set(`${group}.${method}`, wrap(definition.name, wrappers, bind(fn)));
        if (generator) this.#streams.set(`${group}.${method}`, 'server');
      }
    }
    for (const [endpoint, kind] of Object.entries(definition.streams ?? {})) {
      // A bundle built without streams (build-constants.ts) was built from a definition that declares none.
      if (!globalThis.__MICRO_FN_NO_STREAMS__) {
        if (!this.#handlers.has(endpoint))
          throw new TypeError(`streams names "${endpoint}", which is no endpoint: use "Group.Method" of a handler`);
        if (kind !== 'server' && kind !== 'client' && kind !== 'bidi')
          throw new TypeError(`streams["${endpoint}"] is ${JSON.stringify(kind)}: use 'server', 'client' or 'bidi'`);
        if (kind === 'client' && this.#streams.has(endpoint))
          throw new TypeError(
            `${endpoint} is an async generator, so its reply streams: declare it 'bidi', not 'client'`,
          );
      }
      this.#streams.set(endpoint, kind);
    }
    // Nor one built without subscribers from a definition that has some: it carries only the refusal of a message.
    if (!globalThis.__MICRO_FN_NO_SUBSCRIBERS__) {
      const subWrappers = definition.subscriberWrappers ?? [];
      for (const [topic, fn] of Object.entries(definition.subscribers ?? {})) {
        if (typeof fn !== 'function') throw new TypeError(`subscriber for topic "${topic}" must be a function`);
        this.#subscribers.set(topic, wrapSubscriber(definition.name, subWrappers, fn as BoundSubscriber));
      }
    }
  }

  /** The handler chain of `endpoint`; for HEALTH_ENDPOINT, always the built-in health handler. */
  handler(endpoint: string): ((ctx: Context, request: unknown) => Promise<unknown>) | undefined {
    return endpoint === HEALTH_ENDPOINT ? this.#health : this.#handlers.get(endpoint);
  }

  /** How `endpoint` streams; undefined for a plain endpoint (or none). */
  stream(endpoint: string): StreamKind | undefined {
    return this.#streams.get(endpoint);
  }

  subscriber(topic: string): ((ctx: MessageContext, payload: unknown) => Promise<void>) | undefined {
    return this.#subscribers.get(topic);
  }

  get topics(): string[] {
    return [...this.#subscribers.keys()];
  }

  /**
   * Endpoints as the registry lists them; a streaming one carries `metadata.stream` (STREAM_METADATA) = its
   * StreamKind, subscribers carry `metadata.subscriber = "true"`.
   */
  endpoints(): EndpointRecord[] {
    return [
      ...[...this.#handlers.keys()].map((name): EndpointRecord => {
        const kind = this.#streams.get(name);
        return { name, metadata: kind ? { [STREAM_METADATA]: kind } : {} };
      }),
      ...this.topics.map((name) => ({ name, metadata: { subscriber: 'true' } })),
    ];
  }
}

/** The prototype every `async function*` has (a bound function loses it: tell generators apart before binding). */
const ASYNC_GENERATOR = Object.getPrototypeOf(async function* () {}) as object;

/** Own and inherited methods of a plain object or class instance, bound to it, and whether each is an async generator. */
function methodsOf(target: object): [string, Bound, boolean][] {
  if (!globalThis.__MICRO_FN_CHECKED__ && (typeof target !== 'object' || target === null))
    throw new TypeError('a handler group must be an object or a class instance');
  const found = new Map<string, [string, Bound, boolean]>();
  for (let proto: object | null = target; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      if (key === 'constructor' || key.startsWith('_') || found.has(key)) continue;
      const value = Object.getOwnPropertyDescriptor(proto, key)?.value as unknown;
      if (typeof value === 'function')
        found.set(key, [key, (value as Bound).bind(target), Object.getPrototypeOf(value) === ASYNC_GENERATOR]);
    }
  }
  return [...found.values()];
}

const health = () => ({ status: 'ok' });
async function* healthStream() {
  yield health();
}

/** A handler as the chain calls it: context first. */
function bind(fn: Bound): (ctx: Context, request: unknown) => unknown {
  return (ctx, request) => fn(request, ctx);
}

type Link<C, T, R> = (ctx: C, value: T) => Promise<R>;

/**
 * `wrappers` (outermost first) around `base`. Each call of a wrapper gets a `next` that works once: a second call
 * (a retry wrapper, say) would run the rest of the chain and the handler again inside a one-shot function's one
 * invocation, so it rejects with a 500 saying `twice` instead. The flag sits in the closure every call makes
 * anyway, so the guard allocates nothing more; without wrappers the chain is `base` alone, as the health probe's is.
 */
function chain<C, T, R>(
  service: string,
  twice: string,
  wrappers: ((ctx: C, value: T, next: (value: T) => Promise<R>) => Promise<R>)[],
  base: Link<C, T, R>,
) {
  return wrappers.reduceRight<Link<C, T, R>>(
    (next, wrapper) => (ctx, value) => {
      let called = false;
      return wrapper(ctx, value, (v) => {
        if (called) return Promise.reject(errors.internal(service, twice));
        called = true;
        return next(ctx, v);
      });
    },
    base,
  );
}

function wrap(service: string, wrappers: HandlerWrapper[], inner: (ctx: Context, request: unknown) => unknown) {
  const base = async (ctx: Context, request: unknown) => inner(ctx, request);
  return chain(service, 'a handler wrapper called next() twice; the handler runs once per invocation', wrappers, base);
}

function wrapSubscriber(service: string, wrappers: SubscriberWrapper[], fn: BoundSubscriber) {
  const base = async (ctx: MessageContext, payload: unknown) => {
    await fn(payload, ctx);
  };
  return chain(
    service,
    'a subscriber wrapper called next() twice; the subscriber runs once per message',
    wrappers,
    base,
  );
}
