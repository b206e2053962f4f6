/**
 * Build-time only: deploys a function to the running `micro-fn serve`: built into MICRO_FN_HOME/functions, then
 * handed over with `Runtime.Deploy` on serve's control service (found through the registry). serve starts its
 * pool, registers it with the gateway as its address, and retires the previous version without failing what is
 * in flight.
 */
import { join } from 'node:path';
import type { Client } from '../../runtime/core/client.js';
import type { Env } from '../../runtime/core/config.js';
import { MicroError, isMicroError } from '../../runtime/core/errors.js';
import type { Registry } from '../../runtime/core/registry.js';
import { microFnHome } from '../../runtime/plugins/local/home.js';
import { readCredential } from '../../runtime/plugins/local/credential.js';
import {
  callControl,
  controlToken,
  runtimeAddress,
  type DeployRequest,
  type FunctionInfo,
} from '../../runtime/plugins/local/protocol.js';
import { buildLocal } from './build.js';

export interface LocalDeployOptions extends Omit<DeployRequest, 'bundle' | 'entry'> {
  /** The function's entry file (resolved). */
  entry: string;
  /** The deploying host's environment (MICRO_FN_HOME). */
  hostEnv: Env;
  /** Where serve is found, and how it is called. */
  registry: Registry;
  client: Client;
  /** serve's address, when the registry holds several. */
  runtime?: string;
  onProgress?: (line: string) => void;
}

/** Builds `entry` and deploys it to serve; resolves with what serve deployed. */
export async function deployLocal(options: LocalDeployOptions): Promise<FunctionInfo> {
  const { entry, hostEnv, registry, client, runtime, onProgress, ...limits } = options;
  const address = await runtimeAddress(registry, runtime);
  const outdir = join(microFnHome(hostEnv), 'functions', `${Date.now().toString(36)}-${process.pid}`);
  const built = await buildLocal(entry, { outdir, warmCache: true });
  onProgress?.(`built ${entry} (${(built.size / 1024).toFixed(1)} KiB in ${built.ms} ms)`);
  const token = controlToken(address, () => readCredential(microFnHome(hostEnv)));
  return callControl(
    client,
    'Runtime.Deploy',
    { bundle: built.file, entry, ...limits },
    { address, timeout: 120_000, token },
  );
}

export interface LocalRemoveOptions {
  /** The function's name. */
  name: string;
  /** The host's environment (MICRO_FN_HOME). */
  hostEnv: Env;
  registry: Registry;
  client: Client;
  /** serve's address, when the registry holds several. */
  runtime?: string;
}

/**
 * Removes a function from serve (`Runtime.Remove`): serve stops its pool, deregisters it and forgets its record. A
 * name serve does not have is its 404, with the command to use when the registry shows it deployed elsewhere.
 */
export async function removeLocal(options: LocalRemoveOptions): Promise<{ removed: string; address: string }> {
  const { name, hostEnv, registry, client } = options;
  const address = await runtimeAddress(registry, options.runtime);
  const token = controlToken(address, () => readCredential(microFnHome(hostEnv)));
  try {
    await callControl(client, 'Runtime.Remove', { name }, { address, token });
    return { removed: name, address };
  } catch (err) {
    if (!isMicroError(err) || err.code !== 404) throw err;
    const elsewhere = (await registry.getService(name).catch(() => []))
      .flatMap((s) => s.nodes)
      .find((n) => n.metadata.target !== undefined && n.metadata.target !== 'local');
    if (!elsewhere) throw err;
    const target = elsewhere.metadata.target!;
    throw new MicroError(
      err.id,
      404,
      `${err.detail}; ${name} is registered as a ${target} function (${elsewhere.address}): micro-fn remove ${name} --target ${target}`,
      { retryable: false },
    );
  }
}
