/**
 * Build-time only: removes a function deployed with `micro-fn deploy --target lambda`: DeleteFunction (every version
 * and alias) on the Lambda API it lives behind, then its registry entries. Where it lives is read from those entries
 * (the region in `lambda://REGION/NAME:ALIAS`, the API in `lambda-endpoint`) unless the options say otherwise, so
 * `micro-fn remove NAME --target lambda` finds a function deployed to micro-fn serve's Lambda API by itself.
 */
import { UserError, type Env } from '../../runtime/core/index.js';
import type { NodeRecord, Registry, ServiceRecord } from '../../runtime/core/registry.js';
import { LAMBDA_ENDPOINT_METADATA, parseLambdaAddress } from '../../runtime/plugins/lambda/address.js';
import { createLambdaClient, isLoopback, loadLambdaSdk } from '../../runtime/plugins/lambda/client.js';
import { lambdaName } from './deploy.js';

export interface LambdaRemoveOptions {
  /** The service name. */
  name: string;
  /** Default: the region of its registry entries, else the AWS chain's (us-east-1 for a loopback endpoint). */
  region?: string;
  /** Default: the Lambda API its registry entries name, else AWS_ENDPOINT_URL_LAMBDA of `hostEnv`, else AWS. */
  endpoint?: string;
  registry: Registry;
  hostEnv: Env;
  onProgress?: (line: string) => void;
}

export interface LambdaRemoveResult {
  name: string;
  functionName: string;
  /** Where DeleteFunction was called: `REGION` or `REGION at ENDPOINT`, and whether the function was there. */
  deleted: { region: string; endpoint?: string; found: boolean }[];
  /** The node addresses deregistered. */
  deregistered: string[];
}

/**
 * Deletes the Lambda function of service `name` and deregisters it. A function already gone with entries left is
 * no failure (the entries go); neither a function nor an entry is a UserError.
 * @example
 * await removeLambda({ name: 'helloworld', registry, hostEnv: process.env, onProgress: console.error });
 */
export async function removeLambda(options: LambdaRemoveOptions): Promise<LambdaRemoveResult> {
  const { name, registry, hostEnv } = options;
  const progress = options.onProgress ?? (() => {});
  const functionName = lambdaName(name);
  const entries = (await registry.getService(name)).flatMap((service) =>
    service.nodes
      .filter((n) => parseLambdaAddress(n.address)?.name === functionName)
      .map((node) => ({ service, node })),
  );
  // One DeleteFunction per place the entries name (or the one the options and the environment name).
  const places = new Map<string, { region?: string; endpoint?: string }>();
  for (const { node } of entries) {
    const place = {
      region: options.region ?? parseLambdaAddress(node.address)!.region,
      endpoint:
        options.endpoint ?? node.metadata[LAMBDA_ENDPOINT_METADATA] ?? (hostEnv.AWS_ENDPOINT_URL_LAMBDA || undefined),
    };
    places.set(JSON.stringify(place), place);
  }
  if (places.size === 0)
    places.set('', {
      region: options.region,
      endpoint: options.endpoint ?? (hostEnv.AWS_ENDPOINT_URL_LAMBDA || undefined),
    });
  const sdk = await loadLambdaSdk();
  const result: LambdaRemoveResult = { name, functionName, deleted: [], deregistered: [] };
  for (const { region, endpoint } of places.values()) {
    const local = endpoint !== undefined && isLoopback(endpoint);
    const client = createLambdaClient(sdk, {
      region: region ?? (local ? (hostEnv.AWS_REGION ?? 'us-east-1') : undefined),
      endpoint,
      env: hostEnv,
    });
    try {
      const resolved = await client.config.region().catch((err: Error) => {
        throw new UserError('no AWS region: pass --region, or set AWS_REGION (or a region in your AWS profile)', {
          cause: err,
        });
      });
      const where = `${functionName} in ${resolved}${endpoint ? ` at ${endpoint}` : ''}`;
      const found = await client.send(new sdk.DeleteFunctionCommand({ FunctionName: functionName })).then(
        () => true,
        (err: Error) => {
          if (err.name === 'ResourceNotFoundException') return false;
          throw new UserError(`removing ${where} failed: ${err.name}: ${err.message}`, { cause: err });
        },
      );
      progress(found ? `deleted ${where}` : `${where} was not there`);
      result.deleted.push({ region: resolved, ...(endpoint ? { endpoint } : {}), found });
    } finally {
      client.destroy();
    }
  }
  for (const { service, node } of entries) {
    await registry.deregister(entry(service, node));
    result.deregistered.push(node.address);
  }
  if (result.deregistered.length > 0) progress(`deregistered ${name} (${result.deregistered.join(', ')})`);
  if (!result.deleted.some((d) => d.found) && result.deregistered.length === 0)
    throw new UserError(
      `there is no Lambda function ${functionName} to remove (${result.deleted.map((d) => d.region + (d.endpoint ? ` at ${d.endpoint}` : '')).join(', ')}) and no registry entry of ${name}: check --region and --endpoint`,
    );
  return result;
}

function entry(service: ServiceRecord, node: NodeRecord): ServiceRecord {
  return { ...service, nodes: [node] };
}
