/**
 * The NATS plugins: registry on a KV bucket, brokers on NATS core and JetStream, transport over
 * request/reply, visible to NATS's own tooling through the Services API. They load the `nats` package only
 * when they connect.
 */
export * from './connection.js';
export { NatsConnections, type NatsConnectionSource } from './connections.js';
export * from './registry.js';
export * from './transport.js';
export { NatsBroker, createNatsBroker, natsBrokerHeaders, type NatsBrokerOptions } from './broker.js';
export * from './jetstream.js';
export { NatsStore, createNatsStore, type NatsStoreOptions } from './store.js';
export { STREAM_HEARTBEAT, STREAM_IDLE_LIMIT, STREAM_WINDOW, type NatsStreamOptions } from './stream.js';
