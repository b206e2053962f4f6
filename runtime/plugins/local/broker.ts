/**
 * The local broker, as seen from any process on this machine: a client of the broker that `micro-fn serve`
 * hosts, found through the registry (its control service `micro-fn`), as go-micro's http broker registered
 * itself. Delivery is at-least-once while serve runs; messages are kept in serve's memory.
 *
 * Subscribing is serve's job: a function with subscribers is deployed (`micro-fn deploy`) and serve starts
 * one process per message.
 */
import type { Broker, DeliveryHandler, PublishMessage, Subscription } from '../../core/broker.js';
import { Client } from '../../core/client.js';
import { UserError, errors, isMicroError } from '../../core/errors.js';
import type { Registry } from '../../core/registry.js';
import type { Transport } from '../../core/transport.js';

export interface LocalBrokerOptions {
  registry: Registry;
  /** A transport for `http://` addresses. */
  transport: Transport;
}

const RUNTIME_SERVICE = 'micro-fn';

export class LocalBroker implements Broker {
  readonly #client: Client;

  constructor(options: LocalBrokerOptions) {
    this.#client = new Client({ registry: options.registry, transports: [options.transport], retries: 2 });
  }

  async publish(topic: string, message: PublishMessage): Promise<void> {
    try {
      await this.#client.call(RUNTIME_SERVICE, 'Broker.Publish', { topic, headers: message.headers ?? {}, body: new TextDecoder().decode(message.body) });
    } catch (err) {
      if (isMicroError(err) && err.code === 404 && /service micro-fn not found/.test(err.detail)) {
        throw errors.unavailable('micro-fn', 'the local broker is hosted by `micro-fn serve`, and none is running: start it, or choose another broker (MICRO_BROKER)');
      }
      throw err;
    }
  }

  subscribe(topic: string, _handler: DeliveryHandler): Promise<Subscription> {
    return Promise.reject(
      new UserError(`cannot subscribe to "${topic}" through the local broker from this process: deploy the function with \`micro-fn deploy\` and \`micro-fn serve\` runs it for each message (or use MICRO_BROKER=nats)`),
    );
  }
}

export function createLocalBroker(options: LocalBrokerOptions): LocalBroker {
  return new LocalBroker(options);
}
