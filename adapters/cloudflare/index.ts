export { createWorker, type WorkerHandlers, type WorkerOptions } from './handler.js';
export type { ExecutionContext, Message, MessageBatch, WorkerEnv } from './platform.js';
