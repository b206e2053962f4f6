/** Test helpers: a function built with the Workers build and run in real workerd (miniflare), on 127.0.0.1. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, type BodyInit } from 'miniflare';
import { buildCloudflare, type CloudflareBuild } from '../../../adapters/cloudflare/build.js';
import { COMPATIBILITY_DATE } from '../../../adapters/cloudflare/deploy.js';
import { withTimeout } from '../../helpers.js';

export const fixture = (name: string) => fileURLToPath(new URL(`../../fixtures/${name}/index.ts`, import.meta.url));

/** A temporary folder, removed by `remove()`. */
export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-cf-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Builds `entry` into `outdir` as a Worker, minified as a deploy does, for the configuration `env` (its vars). */
export function buildWorker(entry: string, outdir: string, env: Record<string, string> = {}): Promise<CloudflareBuild> {
  return withTimeout(buildCloudflare(entry, { outdir, minify: true, env }), 30_000, 'the Workers build');
}

/** A Worker configuration that selects the NATS registry and broker (the address is only checked, never reached). */
export const NATS_VARS = {
  MICRO_REGISTRY: 'nats',
  MICRO_BROKER: 'nats',
  MICRO_REGISTRY_ADDRESS: 'wss://nats.example.com',
};

/** Runs a built Worker, every module of it, in workerd with `bindings`; dispose() it. */
export function startWorker(built: CloudflareBuild, outdir: string, bindings: Record<string, unknown> = {}): Miniflare {
  const modules = [built.file, ...built.artifacts.map((a) => a.file)].map((path) => ({
    type: 'ESModule' as const,
    path,
  }));
  return new Miniflare({
    modules,
    modulesRoot: outdir,
    compatibilityDate: COMPATIBILITY_DATE,
    host: '127.0.0.1',
    port: 0,
    bindings,
  });
}

/** A request body as miniflare takes it (undici's types; the Web ones are the same at run time). */
export const body = (value: string | Uint8Array | ReadableStream<Uint8Array>): BodyInit => value as BodyInit;

/** What workerd reports for one queue batch (workers-types' FetcherQueueResult). */
export interface QueueResult {
  outcome: string;
  ackAll: boolean;
  retryBatch: { retry: boolean };
  explicitAcks: string[];
  retryMessages: { msgId: string }[];
}

/** One queue message as the test hands it over. */
export interface QueueMessage {
  id: string;
  timestamp: Date;
  body: unknown;
  attempts: number;
}

/** Delivers `messages` as one batch of `queue` to the Worker's `queue` handler, as the platform does. */
export async function sendBatch(mf: Miniflare, queue: string, messages: QueueMessage[]): Promise<QueueResult> {
  // Platform seam: miniflare types its Fetcher from @cloudflare/workers-types, which micro-fn does not install.
  const worker = (await mf.getWorker()) as unknown as {
    queue(queue: string, messages: QueueMessage[]): Promise<QueueResult>;
  };
  return withTimeout(worker.queue(queue, messages), 15_000, `a batch of ${queue}`);
}
