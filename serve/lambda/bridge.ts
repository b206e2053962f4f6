/**
 * Event triggers for Lambda functions, run by `micro-fn serve`: every service in the registry with a
 * `lambda://` node and subscribers has each of its topics subscribed on serve's broker (queue group: the
 * service name, as for local functions), and each message becomes one Invoke of the direct
 * `{"topic","body","metadata"}` event. The message is acked once the function succeeded and nakked otherwise,
 * so the broker redelivers it and dead-letters it as it does for the local target.
 */
import {
  schemeOf,
  type BrokerMessage,
  type DeliveryFailure,
  type Env,
  type NodeRecord,
  type Registry,
  type Subscription,
} from '../../runtime/core/index.js';
import { createLambdaTransport } from '../../runtime/plugins/lambda/transport.js';

export interface LambdaBridgeOptions {
  registry: Registry;
  /** Subscribes `topic` for the function `name`; `run` handles one message: true acks it, a failure naks it. */
  trigger(
    name: string,
    topic: string,
    run: (message: BrokerMessage) => Promise<boolean | DeliveryFailure>,
  ): Promise<Subscription>;
  /** One line per change and per failed message. */
  log(line: string): void;
  /** Where AWS settings are read (credentials, AWS_ENDPOINT_URL_LAMBDA). */
  env: Env;
}

interface Bridged {
  nodes: NodeRecord[];
  topics: Map<string, Subscription>;
}

/**
 * @example
 * const bridge = new LambdaBridge({ registry, env: process.env, log: console.error, trigger: (name, topic, run) => subscribeWithAcks(name, topic, run) });
 * await bridge.start(); // follows the registry until stop()
 */
export class LambdaBridge {
  readonly #options: LambdaBridgeOptions;
  readonly #transport: ReturnType<typeof createLambdaTransport>;
  readonly #bridged = new Map<string, Bridged>();
  /** Per service, the reconciliation running: events about one service are handled in order. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #stop = new AbortController();
  #watching: Promise<void> | undefined;

  constructor(options: LambdaBridgeOptions) {
    this.#options = options;
    this.#transport = createLambdaTransport({ env: options.env });
  }

  /** Bridges what the registry holds now, then follows its changes. */
  async start(): Promise<void> {
    const names = new Set((await this.#options.registry.listServices()).map((s) => s.name));
    await Promise.all([...names].map((name) => this.#queue(name)));
    this.#watching = this.#watch();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#watching;
    await Promise.allSettled(this.#chains.values());
    const subscriptions = [...this.#bridged.values()].flatMap((b) => [...b.topics.values()]);
    this.#bridged.clear();
    await Promise.allSettled(subscriptions.map((s) => s.unsubscribe()));
    await this.#transport.close();
  }

  async #watch(): Promise<void> {
    try {
      for await (const event of this.#options.registry.watch({ signal: this.#stop.signal }))
        void this.#queue(event.service.name);
    } catch (err) {
      if (!this.#stop.signal.aborted)
        this.#options.log(`the Lambda bridge stopped following the registry: ${(err as Error).message}`);
    }
  }

  #queue(name: string): Promise<void> {
    const next = (this.#chains.get(name) ?? Promise.resolve())
      .then(() => (this.#stop.signal.aborted ? undefined : this.#reconcile(name)))
      .catch((err: Error) => this.#options.log(`bridging ${name} failed: ${err.message}`));
    this.#chains.set(name, next);
    return next;
  }

  /** Subscribes the topics the service's Lambda nodes subscribe to, and unsubscribes the ones they dropped. */
  async #reconcile(name: string): Promise<void> {
    const versions = await this.#options.registry.getService(name);
    const nodes = versions.flatMap((v) => v.nodes).filter((n) => schemeOf(n.address) === 'lambda');
    const topics = new Set(
      nodes.length === 0
        ? []
        : versions
            .flatMap((v) => v.endpoints)
            .filter((e) => e.metadata.subscriber === 'true')
            .map((e) => e.name),
    );
    const bridged = this.#bridged.get(name) ?? { nodes, topics: new Map<string, Subscription>() };
    bridged.nodes = nodes;
    this.#bridged.set(name, bridged);
    for (const [topic, subscription] of bridged.topics) {
      if (topics.has(topic)) continue;
      bridged.topics.delete(topic);
      await subscription.unsubscribe();
      this.#options.log(`stopped bridging topic ${topic} to Lambda function ${name}`);
    }
    for (const topic of topics) {
      if (bridged.topics.has(topic)) continue;
      bridged.topics.set(topic, await this.#options.trigger(name, topic, (message) => this.#deliver(name, message)));
      this.#options.log(
        `bridging topic ${topic} to Lambda function ${name} (${nodes.map((n) => n.address).join(', ')})`,
      );
    }
    if (bridged.topics.size === 0) this.#bridged.delete(name);
  }

  async #deliver(name: string, message: BrokerMessage): Promise<boolean | DeliveryFailure> {
    const nodes = this.#bridged.get(name)?.nodes ?? [];
    const node = nodes[Math.floor(Math.random() * nodes.length)];
    if (!node) return { code: 503, detail: `no Lambda function ${name} is registered any more` };
    const outcome = await this.#transport.deliver(node, message);
    if (!outcome.ok)
      this.#options.log(
        `Lambda function ${name} failed message ${message.id} on ${message.topic}: ${JSON.stringify(outcome.error)}`,
      );
    if (outcome.ok) return true;
    return outcome.error ? { code: outcome.error.code, detail: outcome.error.detail } : false;
  }
}
