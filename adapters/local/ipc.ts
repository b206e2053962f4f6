/**
 * Messages between `micro-fn serve` and a single-use function process, over Node's IPC channel (JSON).
 * Bodies travel as UTF-8 text: the JSON codec's bytes.
 */
import type { ErrorJSON } from '../../runtime/core/errors.js';

/** Sent by the function process once its bundle is loaded: it is warm and waits for one invocation. */
export interface IpcReady {
  type: 'ready';
  name: string;
  version: string;
  endpoints: string[];
  topics: string[];
}

/** One RPC request, the process's only one. */
export interface IpcInvoke {
  type: 'invoke';
  id: string;
  endpoint: string;
  contentType: string;
  body: string;
  metadata: Record<string, string>;
}

/** One broker message, the process's only one. */
export interface IpcMessage {
  type: 'message';
  id: string;
  topic: string;
  headers: Record<string, string>;
  body: string;
  attempt: number;
}

export interface IpcReply {
  type: 'reply';
  status: number;
  contentType: string;
  body: string;
  metadata: Record<string, string>;
  error?: ErrorJSON;
}

export interface IpcSettled {
  type: 'settled';
  ok: boolean;
  error?: ErrorJSON;
}

/**
 * Sent to a warm process after it is ready, answered with a pong once it has run a health probe through the
 * invocation path: the first message and the first invocation a process handles run code for the first time
 * (~1 ms); better here, while nobody waits, than in front of the invocation.
 */
export interface IpcPing {
  type: 'ping';
}

export interface IpcPong {
  type: 'pong';
}

export type ToFunction = IpcInvoke | IpcMessage;
export type FromFunction = IpcReady | IpcPong | IpcReply | IpcSettled;

/** Set in a function process's environment by the spawner: start serving over IPC. */
export const IPC_ENV = 'MICRO_FN_IPC';

